"""A fake Databricks workspace on 127.0.0.1 that speaks the REST API the step launcher calls.

Endpoints (databricks-sdk 0.60, as dagster-databricks 0.29 uses them):

    POST /api/2.0/dbfs/create, /api/2.0/dbfs/add-block, /api/2.0/dbfs/close   upload
    GET  /api/2.0/dbfs/read                                                    events, logs
    PUT  /api/2.0/fs/files/Volumes/<catalog>/<schema>/<volume>/...   Files API upload (raw bytes)
    GET  /api/2.0/fs/files/Volumes/...                               Files API download
    POST /api/2.2/jobs/runs/submit        starts the uploaded spark_python_task in a subprocess
    GET  /api/2.2/jobs/runs/get           PENDING -> RUNNING -> TERMINATED (SUCCESS | FAILED)
    POST /api/2.2/jobs/runs/cancel        kills the subprocess
    GET  /api/2.0/clusters/get            a RUNNING cluster

The same host serves the Unity Catalog model registry MLflow calls with registry URI
`databricks-uc`, and the presigned URLs its model files go through (fake_unity_catalog.py).

DBFS is a folder; the subprocess (fake_cluster_driver.py) sees it at /dbfs like a driver's FUSE
mount. Volumes are another folder, seen at /Volumes; as in Unity Catalog, a file can only go into
a volume that exists (`create_volume`), and the folders inside it are made as files arrive.
Every request is recorded, so tests can check what was submitted and uploaded.

Modes: "run" (default), "forbidden" (403 on everything), "terminated_cluster" (the run's cluster
dies), "hang" (the run never finishes), "no_dbfs_root" (a current workspace made without the DBFS
root: DBFS calls get the 403 such a workspace answers). A request whose bearer token is wrong
gets a 401.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from pdm_assets_tests.support.fake_unity_catalog import PRESIGNED, UnityCatalogRegistry

DRIVER = Path(__file__).with_name("fake_cluster_driver.py")
MODES = ("run", "forbidden", "terminated_cluster", "hang", "no_dbfs_root")
FILES_API = "/api/2.0/fs/files"


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeRun:
    run_id: int
    spec: dict[str, Any]
    process: subprocess.Popen[bytes] | None = None
    polls: int = 0
    cancelled: bool = False
    log_path: Path | None = None

    def state(self, mode: str) -> dict[str, str]:
        self.polls += 1
        if self.cancelled:
            return {"life_cycle_state": "TERMINATED", "result_state": "CANCELED"}
        if mode == "terminated_cluster":
            if self.polls == 1:
                return {"life_cycle_state": "PENDING", "state_message": "Waiting for cluster"}
            return {
                "life_cycle_state": "INTERNAL_ERROR",
                "result_state": "FAILED",
                "state_message": (
                    "Cluster 0123-fake was terminated. Reason: SPOT_INSTANCE_TERMINATION"
                ),
            }
        if self.process is None:  # hang
            return {"life_cycle_state": "RUNNING", "state_message": "In run"}
        code = self.process.poll()
        if code is None:
            return {"life_cycle_state": "RUNNING", "state_message": "In run"}
        if code == 0:
            return {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"}
        return {
            "life_cycle_state": "TERMINATED",
            "result_state": "FAILED",
            "state_message": f"Workload failed, exit code {code}",
        }


@dataclass
class FakeDatabricks:
    root: Path
    token: str
    mode: str = "run"
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    driver_env: dict[str, str] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    runs: dict[int, FakeRun] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.dbfs = self.root / "dbfs"
        self.dbfs.mkdir(parents=True, exist_ok=True)
        self.volumes = self.root / "volumes"
        self.volumes.mkdir(parents=True, exist_ok=True)
        self.unity_catalog = UnityCatalogRegistry(self.root / "unity-catalog")
        self._uploads: dict[int, tuple[str, bytearray]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeDatabricks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        for run in self.runs.values():
            if run.process is not None and run.process.poll() is None:
                run.process.kill()
                run.process.wait()

    def local_path(self, dbfs_path: str) -> Path:
        """Where a DBFS path (dbfs:/x, /dbfs/x or /x) lives in the fake's folder."""
        for prefix in ("dbfs:", "/dbfs/"):
            if dbfs_path.startswith(prefix):
                dbfs_path = dbfs_path[len(prefix) :]
        return self.dbfs / dbfs_path.lstrip("/")

    def create_volume(self, catalog: str, schema: str, volume: str) -> str:
        """Make a volume, as `CREATE VOLUME` would; returns /Volumes/<catalog>/<schema>/<volume>."""
        (self.volumes / catalog / schema / volume).mkdir(parents=True, exist_ok=True)
        return f"/Volumes/{catalog}/{schema}/{volume}"

    def volume_files(self) -> dict[str, bytes]:
        """Every file on a volume, by its /Volumes path."""
        return {
            "/Volumes/" + str(path.relative_to(self.volumes)): path.read_bytes()
            for path in self.volumes.rglob("*")
            if path.is_file()
        }

    def files_api(self, method: str, path: str, query: dict[str, str], data: bytes):
        """The Files API on /Volumes paths: (status, JSON error or None, bytes)."""
        if not path.startswith("/Volumes/"):
            return HTTPStatus.BAD_REQUEST, _error("INVALID_PARAMETER_VALUE", path), b""
        parts = path.removeprefix("/Volumes/").split("/")
        volume = self.volumes.joinpath(*parts[:3])
        target = self.volumes.joinpath(*parts)
        if len(parts) < 4 or not volume.is_dir():
            name = ".".join(parts[:3])
            return (
                HTTPStatus.NOT_FOUND,
                _error("NOT_FOUND", f"Volume '{name}' does not exist."),
                b"",
            )
        if method == "PUT":
            if target.exists() and query.get("overwrite") == "false":
                return HTTPStatus.CONFLICT, _error("ALREADY_EXISTS", f"{path} exists"), b""
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            return HTTPStatus.NO_CONTENT, None, b""
        if not target.is_file():
            return HTTPStatus.NOT_FOUND, _error("NOT_FOUND", f"The file {path} does not exist"), b""
        return HTTPStatus.OK, None, target.read_bytes()

    def uploaded(self) -> dict[str, bytes]:
        """Every file the client uploaded, by DBFS path."""
        return {
            str("/" + str(path.relative_to(self.dbfs))): path.read_bytes()
            for path in self.dbfs.rglob("*")
            if path.is_file()
        }

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    # -- endpoints -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]):
        routes = {
            ("POST", "/api/2.0/dbfs/create"): self._dbfs_create,
            ("POST", "/api/2.0/dbfs/add-block"): self._dbfs_add_block,
            ("POST", "/api/2.0/dbfs/close"): self._dbfs_close,
            ("GET", "/api/2.0/dbfs/read"): self._dbfs_read,
            ("POST", "/api/2.2/jobs/runs/submit"): self._runs_submit,
            ("GET", "/api/2.2/jobs/runs/get"): self._runs_get,
            ("POST", "/api/2.2/jobs/runs/cancel"): self._runs_cancel,
            ("GET", "/api/2.0/clusters/get"): self._clusters_get,
        }
        route = routes.get((method, path))
        if self.mode == "no_dbfs_root" and path.startswith("/api/2.0/dbfs/"):
            where = body.get("path") or query.get("path")
            return HTTPStatus.FORBIDDEN, _error(
                "PERMISSION_DENIED",
                f"Public DBFS root is disabled. Access is denied on path: {where}",
            )
        if route is None:
            return HTTPStatus.NOT_FOUND, _error("ENDPOINT_NOT_FOUND", f"{method} {path}")
        return route(query, body)

    def _dbfs_create(self, _: dict[str, str], body: dict[str, Any]):
        with self._lock:
            handle = len(self._uploads) + 1
            self._uploads[handle] = (body["path"], bytearray())
        return HTTPStatus.OK, {"handle": handle}

    def _dbfs_add_block(self, _: dict[str, str], body: dict[str, Any]):
        self._uploads[int(body["handle"])][1].extend(base64.b64decode(body["data"]))
        return HTTPStatus.OK, {}

    def _dbfs_close(self, _: dict[str, str], body: dict[str, Any]):
        path, data = self._uploads[int(body["handle"])]
        target = self.local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(data))
        return HTTPStatus.OK, {}

    def _dbfs_read(self, query: dict[str, str], _: dict[str, Any]):
        target = self.local_path(query["path"])
        if not target.is_file():
            return HTTPStatus.NOT_FOUND, _error(
                "RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {query['path']}."
            )
        offset, length = int(query.get("offset", 0)), int(query.get("length", 1 << 20))
        chunk = target.read_bytes()[offset : offset + length]
        return HTTPStatus.OK, {"bytes_read": len(chunk), "data": base64.b64encode(chunk).decode()}

    def _runs_submit(self, _: dict[str, str], body: dict[str, Any]):
        run = FakeRun(run_id=len(self.runs) + 1001, spec=body)
        if self.mode in ("run", "no_dbfs_root"):
            task = body["tasks"][0]["spark_python_task"]
            run.log_path = self.root / f"driver-{run.run_id}.log"
            env = {
                **self.driver_env,
                "FAKE_DBFS_ROOT": str(self.dbfs),
                "FAKE_VOLUMES_ROOT": str(self.volumes),
                "FAKE_DBUTILS_SECRETS": json.dumps(self.secrets),
                "FAKE_SECRETS_READ_LOG": str(self.root / "secrets-read.jsonl"),
                "DATABRICKS_RUNTIME_VERSION": "17.3",
            }
            with run.log_path.open("wb") as log:
                run.process = subprocess.Popen(
                    [sys.executable, str(DRIVER), task["python_file"], *task["parameters"]],
                    env=env,
                    cwd=self.root,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        self.runs[run.run_id] = run
        return HTTPStatus.OK, {"run_id": run.run_id}

    def _runs_get(self, query: dict[str, str], _: dict[str, Any]):
        run = self.runs[int(query["run_id"])]
        return HTTPStatus.OK, {
            "run_id": run.run_id,
            "state": run.state(self.mode),
            "run_page_url": f"{self.url}/#job/runs/{run.run_id}",
            "tasks": [
                {"task_key": "dagster-task", "cluster_instance": {"cluster_id": "0123-fake"}}
            ],
        }

    def _runs_cancel(self, _: dict[str, str], body: dict[str, Any]):
        run = self.runs[int(body["run_id"])]
        run.cancelled = True
        if run.process is not None and run.process.poll() is None:
            run.process.kill()
        return HTTPStatus.OK, {}

    def _clusters_get(self, query: dict[str, str], _: dict[str, Any]):
        return HTTPStatus.OK, {"cluster_id": query.get("cluster_id"), "state": "RUNNING"}


def _error(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "message": message}


def _handler_for(fake: FakeDatabricks) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:  # keep pytest output clean
            return

        def _serve(self, method: str) -> None:
            parsed = urlparse(self.path)
            query = {key: values[0] for key, values in parse_qs(parsed.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            files = parsed.path.startswith(FILES_API + "/")
            presigned = parsed.path.startswith(PRESIGNED + "/")
            body = json.loads(raw) if raw and not (files or presigned) else {}
            fake.requests.append(
                RecordedRequest(method, parsed.path, query, dict(self.headers.items()), body)
            )
            content, content_type = b"", "application/json"
            if presigned:
                # A cloud store's URL, signed by the fake: no workspace token is sent to it.
                status, content = fake.unity_catalog.handle_presigned(
                    method, unquote(parsed.path), dict(self.headers.items()), raw
                )
                payload, content_type = None, "application/octet-stream"
            elif self.headers.get("Authorization") != f"Bearer {fake.token}":
                status, payload = (
                    HTTPStatus.UNAUTHORIZED,
                    _error("UNAUTHENTICATED", "Invalid access token."),
                )
            elif fake.mode == "forbidden":
                status, payload = (
                    HTTPStatus.FORBIDDEN,
                    _error(
                        "PERMISSION_DENIED", "This token has no permission to use DBFS or jobs."
                    ),
                )
            elif files:
                status, payload, content = fake.files_api(
                    method, unquote(parsed.path.removeprefix(FILES_API)), query, raw
                )
                content_type = "application/octet-stream"
            elif fake.unity_catalog.serves(parsed.path):
                status, payload = fake.unity_catalog.handle_api(
                    method, unquote(parsed.path), query, body, fake.url
                )
            else:
                status, payload = fake.handle(method, parsed.path, query, body)
            encoded = json.dumps(payload).encode() if payload is not None else content
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if payload else content_type)
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

    return Handler


def driver_environment() -> dict[str, str]:
    """What a cluster node has: PATH (java), no project variables, no Databricks token."""
    keep = ("PATH", "JAVA_HOME", "LANG", "LC_ALL", "TMPDIR", "HOME")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env["PYSPARK_PYTHON"] = sys.executable
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env
