"""A synthetic run-to-failure fleet in the five-file CSV layout, to try a fleet of another shape.

Engines with three operating settings and fourteen sensors, one reading a day, each run from a
staggered first day until it fails; most sensors drift exponentially as the engine wears, with
noise. Training engines run to failure (their failure is logged the day after their last
reading); test engines stop some days before their failure, which is logged where it will come
(the remaining useful life), as in public turbofan benchmarks. No error log, no maintenance log,
a machine register with only the ids. It writes, into `--out`:

    PdM_telemetry.csv  datetime,machineID,setting1..setting3,s1..s14
    PdM_failures.csv   datetime,machineID,failure   (failure = "engine")
    PdM_machines.csv   machineID
    fleet.toml         its fleet description, written from docs/your-fleet.md
    test_engines.json  the ids of the engines cut short

    .venv/bin/python benchmarks/run_to_failure_fleet.py --out /tmp/engines --engines 100

Then `benchmarks/fleet_quality.py --fleet /tmp/engines/fleet.toml --csv-dir /tmp/engines`.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

SETTINGS = 3
SENSORS = 14
START = date(2015, 1, 1)
HORIZON_DAYS = 30

DESCRIPTION = """\
name = "run_to_failure_engines"
horizon_hours = {horizon_hours}
observation_hours = 24

[columns]
machine = "machineID"
time = "datetime"
failure = "failure"

[telemetry]
cadence_minutes = 1440
windows_hours = [120, 240]
sensors = [{sensors}]

[components]
names = ["engine"]
"""


def simulate(engines: int, test_share: float, seed: int, out: Path) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    wear_rate = rng.uniform(0.6, 1.4, size=SENSORS)
    direction = rng.choice([-1.0, 1.0], size=SENSORS)
    # A few sensors carry no wear signal, as in the public benchmarks.
    direction[rng.choice(SENSORS, size=4, replace=False)] = 0.0
    names = [f"setting{k}" for k in range(1, SETTINGS + 1)] + [
        f"s{k}" for k in range(1, SENSORS + 1)
    ]
    telemetry = ["datetime,machineID," + ",".join(names)]
    failures = ["datetime,machineID,failure"]
    test_engines = []
    readings = 0
    for engine in range(1, engines + 1):
        life = int(rng.integers(130, 360))
        first = START + timedelta(days=int(rng.integers(0, 120)))
        is_test = rng.random() < test_share
        cut = life - int(rng.integers(5, 120)) if is_test else life
        wear_start = int(life * rng.uniform(0.3, 0.6))
        for day in range(cut):
            worn = max(0.0, (day - wear_start) / (life - wear_start))
            settings = rng.normal(0.0, 1.0, size=SETTINGS).round(4)
            drift = direction * wear_rate * (np.exp(3.0 * worn) - 1.0)
            values = (100.0 + 2.0 * drift + rng.normal(0.0, 1.0, size=SENSORS)).round(4)
            moment = datetime.combine(first + timedelta(days=day), datetime.min.time())
            fields = [*map(str, settings), *map(str, values)]
            telemetry.append(f"{moment:%Y-%m-%d %H:%M:%S},{engine}," + ",".join(fields))
            readings += 1
        # Training engines fail the day after their last reading; test engines at the end of
        # their remaining useful life, after their readings stop.
        failed = datetime.combine(first + timedelta(days=life), datetime.min.time())
        failures.append(f"{failed:%Y-%m-%d %H:%M:%S},{engine},engine")
        if is_test:
            test_engines.append(engine)
    out.mkdir(parents=True, exist_ok=True)
    (out / "PdM_telemetry.csv").write_text("\n".join(telemetry) + "\n")
    (out / "PdM_failures.csv").write_text("\n".join(failures) + "\n")
    machines = ["machineID", *map(str, range(1, engines + 1))]
    (out / "PdM_machines.csv").write_text("\n".join(machines) + "\n")
    sensors = ", ".join(f'{{ name = "{name}" }}' for name in names)
    (out / "fleet.toml").write_text(
        DESCRIPTION.format(horizon_hours=HORIZON_DAYS * 24, sensors=sensors)
    )
    (out / "test_engines.json").write_text(json.dumps(test_engines))
    return {"engines": engines, "test_engines": len(test_engines), "readings": readings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--engines", type=int, default=100)
    parser.add_argument("--test-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    counts = simulate(args.engines, args.test_share, args.seed, args.out)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
