"""The kept work folders the benchmarks reuse (``model_quality.py --keep DIR``), named on the
command line as ``DIR`` or ``DIR:YYYY-MM-01`` (a cutoff of its own)."""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def kept_folder(value: str, default_cutoff: date | None) -> tuple[Path, date]:
    """The folder and the cutoff of a ``DIR[:cutoff]`` argument."""
    path, _, cutoff = value.partition(":")
    if cutoff:
        return Path(path), date.fromisoformat(cutoff)
    if default_cutoff is None:
        raise SystemExit(f"{value}: no cutoff (give --cutoff or DIR:YYYY-MM-01)")
    return Path(path), default_cutoff


def add_arguments(parser: argparse.ArgumentParser, output: str) -> None:
    """The arguments every kept-fleet benchmark takes: the folders, a default cutoff, the
    result file's name."""
    parser.add_argument("work", nargs="+", help="folders kept by model_quality.py [:cutoff]")
    parser.add_argument("--cutoff", type=date.fromisoformat)
    parser.add_argument("--output", default=output)
