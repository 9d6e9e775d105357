"""Progress lines for runs started from a script (the demo): each step as it starts and ends,
with the rows it wrote and its seconds, and an overall "step k of n".

A Dagster logger, so the lines come from the run's own events as they happen (the in-process
executor calls it from the step's thread), and the same lines are kept for the report.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import dagster as dg

# Row counts in materialisation metadata; "refit_rows" is what the shipped model was fitted on.
ROW_KEYS = ("rows_written", "rows", "refit_rows")
# Dagster puts a record's run context, and its event if it has one, on this attribute.
RECORD_METADATA = "dagster_meta"


@dataclass
class Progress:
    """Counts steps over several runs; `total` is every step the caller will run."""

    total: int
    out: TextIO = field(default_factory=lambda: sys.stdout)
    lines: list[str] = field(default_factory=list)
    done: int = 0
    _started: dict[str, float] = field(default_factory=dict)
    # step -> asset -> (rows of the run's window, partitions materialised)
    _rows: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def say(self, text: str) -> None:
        self.lines.append(text)
        self.out.write(text + "\n")
        self.out.flush()

    def _tag(self, number: int) -> str:
        return f"[step {number} of {self.total}]"

    def start(self, name: str) -> None:
        """A step that is not a Dagster step (simulating the fleet, the report)."""
        self._started[name] = time.perf_counter()
        self.say(f"{self._tag(self.done + 1)} {name} ...")

    def end(self, name: str, detail: str = "") -> None:
        self.done += 1
        seconds = time.perf_counter() - self._started.pop(name, time.perf_counter())
        self.say(f"{self._tag(self.done)} {name} done in {seconds:.1f} s{detail}")

    def on_event(self, event: dg.DagsterEvent) -> None:
        step = event.step_key
        if step is None:
            return
        if event.event_type == dg.DagsterEventType.STEP_START:
            self._rows[step] = {}
            self.start(step)
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
            rows = next(
                (
                    materialization.metadata[key]
                    for key in ROW_KEYS
                    if key in materialization.metadata
                ),
                None,
            )
            if rows is not None and isinstance(rows.value, int | float):
                # A range run materialises each day with the same metadata: the window's rows.
                name = materialization.asset_key.to_user_string()
                assets = self._rows.setdefault(step, {})
                assets[name] = (int(rows.value), assets.get(name, (0, 0))[1] + 1)
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            written = [
                f"{name} {rows:,} rows" + (f" in {days} partitions" if days > 1 else "")
                for name, (rows, days) in self._rows.pop(step, {}).items()
            ]
            self.end(step, ": " + ", ".join(written) if written else "")
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            self._started.pop(step, None)
            self.say(f"{self._tag(self.done + 1)} {step} FAILED")

    def logger(self) -> dg.LoggerDefinition:
        """A logger definition that feeds this object; use it instead of the console logger."""
        return dg.LoggerDefinition(_handler_logger(self.on_event))


class _EventHandler(logging.Handler):
    def __init__(self, on_event: Callable[[dg.DagsterEvent], None]) -> None:
        super().__init__(logging.DEBUG)
        self.on_event = on_event

    def emit(self, record: logging.LogRecord) -> None:
        event = (getattr(record, RECORD_METADATA, None) or {}).get("dagster_event")
        if isinstance(event, dg.DagsterEvent):
            self.on_event(event)


def _handler_logger(
    on_event: Callable[[dg.DagsterEvent], None],
) -> Callable[[dg.InitLoggerContext], logging.Logger]:
    def build(_: dg.InitLoggerContext) -> logging.Logger:
        logger = logging.Logger("pdm_assets.dev.progress", logging.DEBUG)
        logger.addHandler(_EventHandler(on_event))
        return logger

    return build
