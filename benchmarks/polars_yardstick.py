"""The features and labels of docs/model.md in Polars, straight from a landing folder: a yardstick.

An independent implementation (time-based rolling windows instead of the project's pairing of
readings with observation times) that the graph benchmark times beside the graph, and that a test
checks equal to the graph's `machine_features` and `failure_labels`. It lives under benchmarks/
only: the project never imports it.

    python benchmarks/polars_yardstick.py LANDING FIRST_DAY END_DAY [--horizon-h 168]

prints the row counts and the seconds it took.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
from polars.lazyframe.group_by import LazyGroupBy

CADENCE = "12h"
TELEMETRY_WINDOWS_HOURS = (12, 24, 36)
SENSORS = ("volt", "rotate", "pressure", "vibration")
ERROR_WINDOW_HOURS = 24
COMPONENTS = 4
ERROR_TYPES = 5
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Landing:
    telemetry: pl.LazyFrame
    errors: pl.LazyFrame
    replacements: pl.LazyFrame
    failures: pl.LazyFrame
    machines: pl.LazyFrame


def day_files(landing: Path, table: str, first: date, end: date) -> list[str]:
    """The `table` CSVs of the landed days in [first, end)."""
    days = [first + timedelta(days=i) for i in range((end - first).days)]
    files = [landing / f"date={day.isoformat()}" / f"{table}.csv" for day in days]
    return [str(path) for path in files if path.exists()]


def _scan(files: list[str], schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    if not files:
        return pl.LazyFrame(schema=schema)
    # Every column typed: a day without errors must not make machineID a string.
    frame = pl.scan_csv(files, schema={**schema, "datetime": pl.String})
    return frame.with_columns(pl.col("datetime").str.to_datetime(TIME_FORMAT, time_unit="us"))


def _number(column: str, prefix: str) -> pl.Expr:
    return pl.col(column).str.strip_prefix(prefix).cast(pl.Int32)


def read_landing(landing: Path | str, first: date, end: date, horizon_hours: int) -> Landing:
    """The rows the features of [first, end) and their labels need, with the project's names."""
    landing = Path(landing)
    lookback = first - timedelta(days=2)  # covers the 36 h telemetry window
    label_end = end + timedelta(hours=horizon_hours) + timedelta(days=1)
    data_first = min(
        (date.fromisoformat(p.name[5:]) for p in landing.glob("date=*")), default=first
    )
    event = {"datetime": pl.Datetime("us"), "machineID": pl.Int64}
    telemetry = _scan(
        day_files(landing, "telemetry", lookback, end),
        {**event, **dict.fromkeys(SENSORS, pl.Float64)},
    ).rename({"machineID": "machine_id"})
    errors = _scan(
        day_files(landing, "errors", lookback, end), {**event, "errorID": pl.String}
    ).select("datetime", pl.col("machineID").alias("machine_id"), _number("errorID", "error"))
    maint_files = [str(landing / "history" / "maint.csv")]
    maint_files += day_files(landing, "maint", data_first, end)
    maintenance = _scan(maint_files, {**event, "comp": pl.String}).select(
        "datetime", pl.col("machineID").alias("machine_id"), _number("comp", "comp")
    )
    failures = _scan(
        day_files(landing, "failures", data_first, label_end), {**event, "failure": pl.String}
    ).select("datetime", pl.col("machineID").alias("machine_id"), _number("failure", "comp"))
    maintenance = maintenance.rename({"comp": "component"})
    failures = failures.rename({"failure": "component"})
    machines = pl.scan_csv(str(landing / "machines.csv")).rename({"machineID": "machine_id"})
    replacements = pl.concat([maintenance, failures]).unique()
    return Landing(
        telemetry, errors.rename({"errorID": "error_id"}), replacements, failures, machines
    )


def _trailing(events: pl.LazyFrame, hours: int) -> LazyGroupBy:
    """Each machine's rows grouped into the windows (t - hours, t], t on the 12 h grid, labelled
    t; only windows that hold a row."""
    return events.sort("machine_id", "datetime").group_by_dynamic(
        "datetime",
        every=CADENCE,
        period=f"{hours}h",
        offset=f"-{hours}h",
        closed="right",
        label="right",
        group_by="machine_id",
        start_by="window",
    )


def _windows(telemetry: pl.LazyFrame, hours: int) -> pl.LazyFrame:
    """Mean and sample sd of each sensor over (t - hours, t], t on the 12 h grid."""
    stats = [
        expr
        for sensor in SENSORS
        for expr in (
            pl.col(sensor).mean().alias(f"{sensor}_mean_{hours}h"),
            pl.col(sensor).std(ddof=1).alias(f"{sensor}_sd_{hours}h"),
        )
    ]
    return _trailing(telemetry, hours).agg(*stats)


def features(data: Landing, first: date, end: date) -> pl.LazyFrame:
    start, stop = (
        datetime.combine(first, datetime.min.time()),
        datetime.combine(end, datetime.min.time()),
    )
    keys = ["machine_id", "datetime"]
    # An observation time exists where its machine reported in (t - 12 h, t].
    rows = _windows(data.telemetry, 12).filter(pl.col("datetime").is_between(start, stop, "left"))
    for hours in TELEMETRY_WINDOWS_HOURS[1:]:
        rows = rows.join(_windows(data.telemetry, hours), on=keys, how="left")
    error_counts = _trailing(data.errors, ERROR_WINDOW_HOURS).agg(
        (pl.col("error_id") == e).sum().alias(f"error{e}_count_24h")
        for e in range(1, ERROR_TYPES + 1)
    )
    rows = rows.join(error_counts, on=keys, how="left").with_columns(
        pl.col(f"error{e}_count_24h").fill_null(0).cast(pl.Int64) for e in range(1, ERROR_TYPES + 1)
    )
    # The latest replacement at or before t: an as-of join per component.
    observed = rows.select(keys).sort("datetime")
    for c in range(1, COMPONENTS + 1):
        replaced = (
            data.replacements.filter(pl.col("component") == c)
            .select("machine_id", pl.col("datetime").alias(f"_last{c}"))
            .with_columns(pl.col(f"_last{c}").alias("datetime"))
            .sort("datetime")
        )
        observed = observed.join_asof(replaced, on="datetime", by="machine_id", strategy="backward")
        since = (pl.col("datetime") - pl.col(f"_last{c}")).dt.total_seconds() / 86400.0
        observed = observed.with_columns(since.alias(f"comp{c}_days_since_replacement")).drop(
            f"_last{c}"
        )
    rows = rows.join(observed, on=keys, how="left")
    return rows.join(
        data.machines.select("machine_id", "model", "age"), on="machine_id", how="left"
    )


def labels(
    observations: pl.LazyFrame, failures: pl.LazyFrame, horizon_hours: int, known_until: datetime
) -> pl.LazyFrame:
    """The first component to fail in (t, t + H] (lowest number on a tie), 0 if none."""
    horizon = timedelta(hours=horizon_hours)
    keys = ["machine_id", "datetime"]
    pairs = (
        observations.select(keys)
        .join(failures.rename({"datetime": "failed_at"}), on="machine_id", how="inner")
        .filter(
            (pl.col("failed_at") > pl.col("datetime"))
            & (pl.col("failed_at") <= pl.col("datetime") + horizon)
        )
    )
    first = pairs.group_by(keys).agg(
        pl.col("failed_at").min().alias("_first"),
        *[
            (pl.col("component") == c).any().alias(f"fails_comp{c}")
            for c in range(1, COMPONENTS + 1)
        ],
        pl.col("component")
        .filter(pl.col("failed_at") == pl.col("failed_at").min())
        .min()
        .alias("label"),
    )
    labelled = observations.select(keys).join(first, on=keys, how="left")
    return labelled.select(
        *keys,
        pl.col("label").fill_null(0).cast(pl.Int32),
        *[pl.col(f"fails_comp{c}").fill_null(False) for c in range(1, COMPONENTS + 1)],
        ((pl.col("_first") - pl.col("datetime")).dt.total_seconds() / 3600.0).alias(
            "hours_to_failure"
        ),
        (pl.col("datetime") > known_until - horizon).alias("censored"),
    )


def compute(
    landing: Path | str, first: date, end: date, horizon_hours: int = 168
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Features and labels of the observation times in [first, end); failures known to `end`
    plus the horizon where the landing has them."""
    landing = Path(landing)
    data = read_landing(landing, first, end, horizon_hours)
    feature_rows = features(data, first, end).collect()
    last_failure_day = max(
        (
            date.fromisoformat(p.name[5:])
            for p in landing.glob("date=*")
            if (p / "_COMPLETE").exists()
        ),
        default=end,
    )
    known_until = datetime.combine(last_failure_day + timedelta(days=1), datetime.min.time())
    label_rows = labels(feature_rows.lazy(), data.failures, horizon_hours, known_until).collect()
    return feature_rows, label_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("landing", type=Path)
    parser.add_argument("first", type=date.fromisoformat)
    parser.add_argument("end", type=date.fromisoformat, help="the day after the last")
    parser.add_argument("--horizon-h", type=int, default=168)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    began = time.perf_counter()
    feature_rows, label_rows = compute(args.landing, args.first, args.end, args.horizon_h)
    seconds = time.perf_counter() - began
    result = {"features": feature_rows.height, "labels": label_rows.height, "seconds": seconds}
    logging.getLogger(__name__).info("%s", json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
