"""Where the benchmarks keep their figures: one JSON file each under benchmarks/results/."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, report: dict[str, Any]) -> Path:
    """Write `report` to benchmarks/results/<name> and print it; the file's path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2) + "\n"
    path = RESULTS / name
    path.write_text(text)
    sys.stdout.write(text)
    return path
