"""A long-lived local Spark Connect server, so that runs meet a warm Spark instead of a cold JVM.

Every run the daemon launches is a new process; with `local[*]` each one starts a JVM and pays
its warm-up (the first queries of a JVM run several times slower than the same queries later).
`make ui` starts this server beside `dagster dev` and points the runs at it
(PDM_SPARK_MASTER=sc://localhost:<port>), so a landed day is scored by a Spark that is already
running. The server listens on 127.0.0.1 only and runs with the local session's settings and
PDM_SPARK_CONF's.

On a shared host, loopback is not private: the server requires a token (Spark's
`spark.connect.authenticate.token`), made anew at each start and kept in
`<home>/spark-connect/token`, readable by its owner only. Clients pass it in the environment
variable SPARK_CONNECT_AUTHENTICATE_TOKEN, which pyspark reads; it is never part of the master
URL (which resource config, and so the Dagster UI, shows), and `localhost` in that URL keeps
pyspark from switching to TLS, which a token otherwise implies. The server's settings (where
object-store keys go) are in a properties file of the same folder, owner-only too, not on its
command line; and it gets only the environment variables it needs, not the caller's tokens.

    python -m pdm_assets.adapters.spark_server start --home .pdm_home  # prints the sc:// URL
    python -m pdm_assets.adapters.spark_server status --home .pdm_home  # its URL, exit 1 if none
    python -m pdm_assets.adapters.spark_server token --home .pdm_home   # the clients' token
    python -m pdm_assets.adapters.spark_server stop --home .pdm_home

The server's log and pid file live in `<home>/spark-connect/`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pyspark

from pdm_assets.adapters.spark import LOCAL_DEFAULT_CONF, JavaNotFoundError, ensure_java
from pdm_assets.settings import load_settings

logger = logging.getLogger(__name__)

DEFAULT_PORT = 15002
STARTED = "Spark Connect server started"
START_TIMEOUT_SECONDS = 180
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
TOKEN_VARIABLE = "SPARK_CONNECT_AUTHENTICATE_TOKEN"
TOKEN_FILE = "token"
PROPERTIES_FILE = "spark.properties"
# What the server's process gets of the caller's environment: what Java, Spark and its Python
# workers need to run, nothing else (no cloud or Databricks tokens).
SERVER_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "TZ")


def server_folder(home: Path) -> Path:
    return home / "spark-connect"


def connect_url(port: int) -> str:
    # localhost, not 127.0.0.1: with a token set, pyspark only keeps a plain channel to localhost.
    return f"sc://localhost:{port}"


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, created so from the start (no window in which it
    is readable by others)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def token(home: Path) -> str | None:
    """The token of this home's server, for clients' SPARK_CONNECT_AUTHENTICATE_TOKEN."""
    path = server_folder(home) / TOKEN_FILE
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def client_environment(home: Path) -> dict[str, str]:
    """The variables a client process of this home's server needs (its token)."""
    value = token(home)
    return {TOKEN_VARIABLE: value} if value else {}


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _running_pid(folder: Path) -> int | None:
    """The pid in the pid file if that process is still this server (spark-submit execs the
    JVM, so the pid is the JVM's); a reused pid or a stale file is not."""
    try:
        pid = int((folder / "server.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 1:
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if SERVER_CLASS.encode() in command else None


def status(home: Path, port: int = DEFAULT_PORT) -> str | None:
    """The URL of this home's server if it runs and listens, else None."""
    if _running_pid(server_folder(home)) is not None and _listening(port):
        return connect_url(port)
    return None


def server_properties(port: int, conf: dict[str, str]) -> dict[str, str]:
    """The server's Spark settings: the local session's defaults, then `conf`, then where it
    listens (loopback only)."""
    return {
        **LOCAL_DEFAULT_CONF,
        **conf,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
    }


def server_command(master: str, properties: Path) -> list[str]:
    spark_home = Path(pyspark.__file__).parent
    command = [str(spark_home / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    command += ["--master", master, "--properties-file", str(properties)]
    return [*command, "spark-internal"]


def server_environment(java: Path, secret: str) -> dict[str, str]:
    """The server's whole environment: SERVER_ENVIRONMENT's variables of this process, Java's
    and Spark's, and the token."""
    inherited = {name: os.environ[name] for name in SERVER_ENVIRONMENT if name in os.environ}
    return {
        **inherited,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "JAVA_HOME": os.environ.get("JAVA_HOME") or str(java.resolve().parents[1]),
        TOKEN_VARIABLE: secret,
    }


def start(
    home: Path,
    port: int = DEFAULT_PORT,
    master: str = "local[*]",
    conf: dict[str, str] | None = None,
) -> str:
    """Start the server unless it runs already; its sc:// URL once it accepts sessions.

    `conf` (e.g. PDM_SPARK_CONF's settings) overrides the local session's defaults.
    """
    folder = server_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    url = connect_url(port)
    if status(home, port) is not None:
        logger.info("Spark Connect already running at %s", url)
        return url
    if _listening(port):
        raise RuntimeError(
            f"port {port} on 127.0.0.1 is taken by another program; choose another with --port"
        )
    java = ensure_java()
    log = folder / "server.log"
    secret = secrets.token_urlsafe(32)
    _write_private(folder / TOKEN_FILE, secret)
    properties = folder / PROPERTIES_FILE
    settings = server_properties(port, conf or {})
    # Java properties: a backslash escapes, so a value's own backslashes are doubled.
    lines = "".join(
        f"{key}={value.replace(chr(92), chr(92) * 2)}\n" for key, value in settings.items()
    )
    _write_private(properties, lines)
    with log.open("w") as output:
        server = subprocess.Popen(
            server_command(master, properties),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=server_environment(java, secret),
            # Its own process group: `stop` ends the JVM and the launcher script together.
            start_new_session=True,
        )
    (folder / "server.pid").write_text(str(server.pid))
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited; its log {log}:\n{_tail(log)}")
        if STARTED in log.read_text(errors="replace") and _listening(port):
            logger.info("Spark Connect started at %s (log %s)", url, log)
            return url
        time.sleep(0.5)
    stop(home)
    raise RuntimeError(f"the Spark Connect server did not start in time; its log:\n{_tail(log)}")


def stop(home: Path) -> bool:
    """Stop the server this home started; False if none was running."""
    folder = server_folder(home)
    pid = _running_pid(folder)
    (folder / "server.pid").unlink(missing_ok=True)
    (folder / TOKEN_FILE).unlink(missing_ok=True)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # A server this very process started stays a zombie, and its group alive, until reaped.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def _tail(log: Path, characters: int = 3000) -> str:
    return log.read_text(errors="replace")[-characters:] if log.exists() else "(no log)"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m pdm_assets.adapters.spark_server")
    parser.add_argument("action", choices=("start", "stop", "status", "token"))
    parser.add_argument("--home", type=Path, required=True, help="the project home (PDM_HOME)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--master", default="local[*]", help="the server's own Spark master")
    args = parser.parse_args(argv)
    if args.action == "status":
        running = status(args.home, args.port)
        if running is None:
            logger.info("no Spark Connect server of %s is running", args.home)
            return 1
        sys.stdout.write(running + "\n")
        return 0
    if args.action == "token":
        value = token(args.home) if status(args.home, args.port) else None
        if value is None:
            logger.info("no Spark Connect server of %s is running", args.home)
            return 1
        sys.stdout.write(value + "\n")
        return 0
    if args.action == "stop":
        stopped = stop(args.home)
        logger.info("Spark Connect stopped" if stopped else "no Spark Connect server was running")
        return 0
    try:
        url = start(args.home, args.port, args.master, load_settings().spark_conf)
    except (RuntimeError, ValueError, JavaNotFoundError) as error:
        logger.error("%s", error)
        return 1
    # The URL alone on stdout, for `make ui` to hand to the runs.
    sys.stdout.write(url + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
