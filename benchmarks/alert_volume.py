"""Alert volume against failures: model_quality.py over fleet sizes and seeds, in one table.

Runs `model_quality.py` (one subprocess per run, so each has its own Spark and MLflow) on
simulated fleets of each `--sizes` x `--seeds` (and on a folder of the public PdM_*.csv[.gz]
files with `--csv DIR`), and tabulates per run: macro F1 of pdm_assets and of the notebooks'
method, pooled P/R, alert rate, the share of rows a week before a failure (positive share),
alert rate / positive share, and P/R when both alert at the notebooks' alert rate.

    python benchmarks/alert_volume.py --yardsticks DIR --csv DATA_DIR --keep-root /tmp/av
    python benchmarks/alert_volume.py --yardsticks DIR --csv DATA_DIR --keep-root /tmp/av \
        --reuse --model '{"decision_strategy": "precision_target"}' --label precision

`--keep-root DIR` keeps each run's work folder as DIR/sim<machines>-s<seed> and DIR/sample;
`--reuse` trains and scores pdm_assets again on them (another `--model` policy) without
simulating, ingesting or running the notebooks' method again.

Writes benchmarks/results/alert_volume[-<label>].json (each run's own report is
model_quality-...-alert_volume[-<label>].json) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from model_quality import result_name
from results_file import RESULTS, write_result

MODEL_QUALITY = Path(__file__).resolve().parent / "model_quality.py"
SAMPLE = "sample"
logger = logging.getLogger("alert_volume")


def _run(
    name: str, options: list[str], work: Path | None, common: list[str], result: str
) -> dict[str, Any]:
    """One model_quality.py run: its report with the wall-clock seconds."""
    command = [sys.executable, str(MODEL_QUALITY), *options, *common]
    if work is not None:
        command += ["--keep", str(work)]
    logger.info("%s: %s", name, " ".join(command[1:]))
    began = time.perf_counter()
    # Its log goes to our stderr; its stdout (the report and a summary) is read back from the file.
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    seconds = time.perf_counter() - began
    if completed.returncode != 0:
        logger.error("%s failed (exit %s) after %.0f s", name, completed.returncode, seconds)
        return {"run": name, "failed": completed.returncode, "seconds": round(seconds, 1)}
    summary = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else ""
    logger.info("%s: %.0f s; %s", name, seconds, summary)
    report: dict[str, Any] = json.loads((RESULTS / result).read_text())
    return {"run": name, "seconds": round(seconds, 1), "result": result, "report": report}


def _row(run: dict[str, Any]) -> dict[str, Any]:
    """The table's figures of one run."""
    if "report" not in run:
        return {"run": run["run"], "failed": run["failed"], "seconds": run["seconds"]}
    report = run["report"]
    evaluation = report["evaluation"]
    at_rate = evaluation["at_notebooks_alert_rate"]
    row: dict[str, Any] = {
        "run": run["run"],
        "machines": report["fleet"]["machines"],
        "seed": report["fleet"].get("seed"),
        "alert_rate_target": at_rate["alert_rate"],
        "seconds": run["seconds"],
    }
    for system in ("pdm_assets", "seed_method"):
        figures = evaluation[system]
        volume = report["alert_volume"].get(system, {})
        at = at_rate[system]
        row[system] = {
            "macro_f1": figures.get("macro_f1"),
            "pooled": figures.get("pooled"),
            "alert_rate": volume.get("alert_rate"),
            "positive_share": volume.get("positive_share"),
            "alert_rate_over_positive_share": volume.get("alert_rate_over_positive_share"),
            "at_notebooks_alert_rate": {
                "pooled": at.get("pooled"),
                "any_failure_p": at.get("any_failure_p"),
            },
            **({"reason": figures["reason"]} if "reason" in figures else {}),
        }
    return row


def _pr(pooled: dict[str, float] | None) -> str:
    return f"{pooled['p']:.2f} / {pooled['r']:.2f}" if pooled else "-"


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the runs, each cell pdm_assets / the notebooks' method (P / R pairs
    split by //); the runs where pdm_assets scored nothing listed under it with the reason."""
    lines = [
        "| run | machines | seed | macro F1 | pooled P / R | alert rate | positive share "
        "| alert rate / positive share | P / R at notebooks' rate | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for row in rows:
        if "failed" in row:
            blanks = " | " * 7
            lines.append(
                f"| {row['run']} | failed (exit {row['failed']}){blanks}{row['seconds']:.0f} |"
            )
            continue
        ours, theirs = row["pdm_assets"], row["seed_method"]
        # The same rows for both on these runs, so one share; two if they ever differ.
        pair = (ours["positive_share"], theirs["positive_share"])
        shares = {value for value in pair if value is not None}
        cells = [
            row["run"],
            str(row["machines"]),
            "-" if row["seed"] is None else str(row["seed"]),
            f"{_number(ours['macro_f1'])} / {_number(theirs['macro_f1'])}",
            f"{_pr(ours['pooled'])} // {_pr(theirs['pooled'])}",
            f"{_number(ours['alert_rate'])} / {_number(theirs['alert_rate'])}",
            " / ".join(_number(value) for value in sorted(shares)) or "-",
            f"{_number(ours['alert_rate_over_positive_share'], 2)} / "
            f"{_number(theirs['alert_rate_over_positive_share'], 2)}",
            f"{_pr(ours['at_notebooks_alert_rate']['pooled'])} // "
            f"{_pr(theirs['at_notebooks_alert_rate']['pooled'])}",
            f"{row['seconds']:.0f}",
        ]
        if "reason" in ours:
            cells[3] = f"none* / {_number(theirs['macro_f1'])}"
            notes.append(f"\n* {row['run']}: pdm_assets scored nothing: {ours['reason']}")
        lines.append("| " + " | ".join(cells) + " |")
    legend = "\nEach cell: pdm_assets / the notebooks' method (P / R pairs split by //)."
    return "\n".join(lines) + legend + "".join(notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yardsticks", required=True, metavar="DIR", help="model_quality.py's")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100], metavar="N")
    parser.add_argument("--with-1000", action="store_true", help="add a fleet of 1000 machines")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], metavar="S")
    parser.add_argument("--days", type=int, default=151, help="simulated days from 2015-01-01")
    parser.add_argument("--cutoff", type=date.fromisoformat, default=date(2015, 5, 1))
    parser.add_argument("--csv", type=Path, metavar="DIR", help="add a run on these PdM_* files")
    parser.add_argument("--csv-cutoff", type=date.fromisoformat, default=date(2015, 3, 1))
    parser.add_argument("--model", help="ModelConfig overrides as JSON, passed through")
    parser.add_argument("--gated", action="store_true", help="passed through: keep the gate")
    parser.add_argument("--seed-trees", type=int, help="passed through: trees of seed_method.py")
    parser.add_argument(
        "--keep-root",
        type=Path,
        metavar="DIR",
        help=f"keep each run's folder as DIR/sim<machines>-s<seed>, DIR/{SAMPLE}",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="with --keep-root: reuse the kept folders"
    )
    parser.add_argument("--label", default="", help="suffix of the result files' names")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.reuse and not args.keep_root:
        raise SystemExit("--reuse needs --keep-root DIR")
    sizes = [*args.sizes, *([1000] if args.with_1000 and 1000 not in args.sizes else [])]
    label = "alert_volume" + (f"-{args.label}" if args.label else "")
    common = ["--yardsticks", args.yardsticks, "--label", label]
    if args.model:
        common += ["--model", args.model]
    if args.gated:
        common.append("--gated")
    if args.seed_trees is not None:
        common += ["--seed-trees", str(args.seed_trees)]
    if args.reuse:
        common.append("--reuse")
    root = args.keep_root.resolve() if args.keep_root else None

    runs = []
    if args.csv is not None:
        csv = args.csv.resolve()
        runs.append(
            _run(
                SAMPLE,
                ["--csv", str(csv), "--cutoff", args.csv_cutoff.isoformat()],
                root / SAMPLE if root else None,
                common,
                result_name(csv, 0, 0, 0, label),
            )
        )
    for machines in sizes:
        for seed in args.seeds:
            name = f"sim{machines}-s{seed}"
            fleet = ["--machines", str(machines), "--days", str(args.days), "--seed", str(seed)]
            runs.append(
                _run(
                    name,
                    [*fleet, "--cutoff", args.cutoff.isoformat()],
                    root / name if root else None,
                    common,
                    result_name(None, machines, args.days, seed, label),
                )
            )
    rows = [_row(run) for run in runs]
    report = {
        "grid": {
            "sizes": sizes,
            "seeds": args.seeds,
            "days": args.days,
            "cutoff": args.cutoff.isoformat(),
            "csv": str(args.csv.resolve()) if args.csv else None,
            "csv_cutoff": args.csv_cutoff.isoformat() if args.csv else None,
        },
        "model": json.loads(args.model) if args.model else {},
        "gated": args.gated,
        "reuse": args.reuse,
        "runs": rows,
        "results": {run["run"]: run.get("result") for run in runs},
    }
    write_result(f"alert_volume{'-' + args.label if args.label else ''}.json", report)
    print(table(rows))
    return 1 if any("failed" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
