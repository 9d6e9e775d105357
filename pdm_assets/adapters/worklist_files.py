"""Where the daily work lists go as CSV, for people who work outside Dagster."""

from __future__ import annotations

from datetime import date

import dagster as dg
from pydantic import Field

from pdm_assets.core import filesystem


class WorklistFiles(dg.ConfigurableResource):
    """A folder (or object-store URI) of `maintenance_worklist_<day>.csv` files, one per day,
    replaced whole when the day's list is built again."""

    location: str = Field(description="PDM_WORKLISTS, by default the home's worklists folder.")

    def path(self, day: date) -> str:
        return filesystem.join(self.location, f"maintenance_worklist_{day.isoformat()}.csv")

    def write(self, day: date, text: str) -> str:
        path = self.path(day)
        filesystem.write_text(path, text)
        return path
