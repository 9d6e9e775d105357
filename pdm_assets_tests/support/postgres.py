"""A throwaway PostgreSQL server from Debian's package, for the production-form test and the soak.

`initdb` refuses to run as root, so as root the server runs as the `postgres` user in a folder
that user owns; it listens on a Unix socket in that folder only (no TCP port), and is stopped and
removed on exit.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DATABASE = "dagster"


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no PostgreSQL {name}; `make test` installs Debian's postgresql")
    return found[-1]


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def local_postgres() -> Iterator[str]:
    """A running server with an empty database; yields its SQLAlchemy URL."""
    folder = Path(tempfile.mkdtemp(prefix="pdm-postgres-"))
    data, socket = folder / "data", folder / "socket"
    socket.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(socket, "postgres")
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    log = folder / "server.log"
    try:
        subprocess.run(
            _as_owner([_bin("initdb"), "-D", str(data), "-U", user, "-A", "trust"]),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_owner(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-w",
                    "-o",
                    f"-k {socket} -c listen_addresses='' -c max_connections=200",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_owner([_bin("createdb"), "-h", str(socket), "-U", user, DATABASE]),
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://{user}@/{DATABASE}?host={socket}"
    finally:
        if data.exists():
            subprocess.run(
                _as_owner([_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
            )
        time.sleep(0.2)
        shutil.rmtree(folder, ignore_errors=True)
