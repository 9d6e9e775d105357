"""Time the simulator at full size: 1000 machines x 365 days, simulated and landed 3 times.

Run from the checkout root::

    .venv/bin/python benchmarks/simulator_benchmark.py [--fleet PATH]

The fleet is the shipped default description (the Azure data set's shape) unless --fleet
names another description.

Writes the medians to stdout and to benchmarks/results/simulator.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from pdm_assets.core.fleet import Fleet, load_fleet
from pdm_assets.simulator.fleet_simulator import FleetSpec, simulate, write_landing

RESULTS = Path(__file__).resolve().parent / "results" / "simulator.json"


def run(machines: int, days: int, repeats: int, seed: int, fleet: Fleet) -> dict[str, object]:
    spec = FleetSpec(machines=machines, start=date(2015, 1, 1), days=days, seed=seed)
    simulate_seconds: list[float] = []
    write_seconds: list[float] = []
    telemetry_rows = 0
    landed_bytes = 0
    for _ in range(repeats):
        # A fresh folder each round, so every round writes new files rather than replacing.
        folder = Path(tempfile.mkdtemp(prefix="pdm-sim-bench-"))
        try:
            began = time.perf_counter()
            simulated = simulate(spec, fleet)
            simulated_at = time.perf_counter()
            written = write_landing(simulated, folder / "landing")
            finished = time.perf_counter()
            simulate_seconds.append(simulated_at - began)
            write_seconds.append(finished - simulated_at)
            telemetry_rows = sum(simulated.row_counts(day)["telemetry"] for day in written)
            landed_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            del simulated
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    simulate_median = statistics.median(simulate_seconds)
    write_median = statistics.median(write_seconds)
    return {
        "fleet": fleet.name,
        "machines": machines,
        "days": days,
        "seed": seed,
        "repeats": repeats,
        "telemetry_rows": telemetry_rows,
        "landed_megabytes": round(landed_bytes / 1e6, 1),
        "simulate_seconds_median": round(simulate_median, 3),
        "write_seconds_median": round(write_median, 3),
        "total_seconds_median": round(simulate_median + write_median, 3),
        "simulate_seconds": [round(s, 3) for s in simulate_seconds],
        "write_seconds": [round(s, 3) for s in write_seconds],
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--fleet", type=Path, default=None, help="a fleet description TOML (default: shipped)"
    )
    args = parser.parse_args(argv)
    result = run(args.machines, args.days, args.repeats, args.seed, load_fleet(args.fleet))
    text = json.dumps(result, indent=2) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
