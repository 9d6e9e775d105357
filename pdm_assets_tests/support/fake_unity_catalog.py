"""The Unity Catalog model registry of a fake workspace, as MLflow 3.17's `UcModelRegistryStore`
calls it (registry URI `databricks-uc`, DATABRICKS_HOST pointing at fake_databricks.py).

Endpoints, under /api/2.0/mlflow/unity-catalog (GET takes its fields as query parameters, POST a
JSON body, errors are {"error_code", "message"} with a 4xx status):

    registered-models/create, /get, /alias (POST sets, GET reads)
    registered-models:is-databricks-sdk-models-artifact-repository-enabled   -> false
    model-versions/create (PENDING_REGISTRATION), /finalize (READY), /get, /set-tag
    model-versions/search              one condition only, name='...' or run_id='...', as the
                                       real service; results carry no tags and no aliases
    model-versions/generate-temporary-credentials   storage_mode DEFAULT_STORAGE: the client
                                       then moves the model's files through presigned URLs

and the presigned-URL file service a DEFAULT_STORAGE model lives in:

    POST /api/2.0/fs/create-upload-url, /create-download-url   {path} -> {url, headers}
    GET  /api/2.0/fs/directories/Models/<catalog>/<schema>/<model>/<version>/...   listing
    PUT, GET /_presigned/<path>     the URLs handed out: no Authorization header, as a cloud
                                    store's presigned URL; the header the fake gave must come back

Model names must have three levels (catalog.schema.model), as in Unity Catalog.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

REGISTRY_API = "/api/2.0/mlflow/unity-catalog"
PRESIGNED = "/_presigned"
DIRECTORIES = "/api/2.0/fs/directories"
PRESIGNED_HEADER = "x-fake-presigned-signature"
_ONE_CONDITION = re.compile(r"^\s*(name|run_id)\s*=\s*'([^']*)'\s*$")


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def payload(self) -> dict[str, str]:
        return {"error_code": self.code, "message": self.message}


def _missing(message: str, code: str = "RESOURCE_DOES_NOT_EXIST") -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, code, message)


def _invalid(message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)


def _now() -> int:
    return int(time.time() * 1000)


@dataclass
class UnityCatalogRegistry:
    """Registered models, versions and their files (under `root`), behind one lock."""

    root: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    searches: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def serves(self, path: str) -> bool:
        return path.startswith((REGISTRY_API, PRESIGNED + "/", DIRECTORIES + "/")) or path in (
            "/api/2.0/fs/create-upload-url",
            "/api/2.0/fs/create-download-url",
        )

    # -- what tests read -----------------------------------------------------------------------

    def tags(self, name: str, version: str) -> dict[str, str]:
        return dict(self.versions[(name, version)]["tags"])

    def aliases(self, name: str) -> dict[str, str]:
        return dict(self.models[name]["aliases"])

    def files(self, name: str, version: str) -> list[str]:
        folder = self.root / _model_root(name, version).lstrip("/")
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())

    # -- the API -------------------------------------------------------------------------------

    def handle_api(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any], base_url: str
    ) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            with self._lock:
                if path.startswith(REGISTRY_API):
                    return HTTPStatus.OK, self._registry(method, path, query, body)
                return HTTPStatus.OK, self._file_service(method, path, body, base_url)
        except ApiError as error:
            return error.status, error.payload()

    def handle_presigned(
        self, method: str, path: str, headers: dict[str, str], data: bytes
    ) -> tuple[HTTPStatus, bytes]:
        """A presigned URL: no workspace token, but the signature header it was handed with."""
        if "Authorization" in headers:
            return HTTPStatus.BAD_REQUEST, b"<Error>a presigned URL takes no Authorization</Error>"
        if headers.get(PRESIGNED_HEADER) != "1":
            return HTTPStatus.FORBIDDEN, b"<Error>SignatureDoesNotMatch</Error>"
        local = self.root / path.removeprefix(PRESIGNED).lstrip("/")
        if method == "PUT":
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
            return HTTPStatus.OK, b""
        if not local.is_file():
            return HTTPStatus.NOT_FOUND, b"<Error>NoSuchKey</Error>"
        return HTTPStatus.OK, local.read_bytes()

    def _model(self, name: str | None) -> dict[str, Any]:
        if name not in self.models:
            raise _missing(f"Registered model '{name}' does not exist.")
        return self.models[name]

    def _version(self, name: str | None, version: object) -> dict[str, Any]:
        self._model(name)
        key = (str(name), str(version))
        if key not in self.versions:
            raise _missing(f"Model version {name} v{version} does not exist.")
        return self.versions[key]

    def _version_json(self, version: dict[str, Any], with_tags: bool = True) -> dict[str, Any]:
        aliases = self.models[version["name"]]["aliases"]
        out = {key: value for key, value in version.items() if key != "tags"}
        if with_tags:
            out["tags"] = [{"key": k, "value": v} for k, v in version["tags"].items()]
            out["aliases"] = [
                {"alias": alias, "version": v}
                for alias, v in aliases.items()
                if v == version["version"]
            ]
        return out

    def _model_json(self, model: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": model["name"],
            "creation_timestamp": model["created"],
            "last_updated_timestamp": model["created"],
            "tags": [],
            "aliases": [{"alias": a, "version": v} for a, v in model["aliases"].items()],
        }

    def _registry(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        endpoint = path.removeprefix(REGISTRY_API + "/")
        name = body.get("name") or query.get("name")
        if (method, endpoint) == ("POST", "registered-models/create"):
            if name in self.models:
                raise ApiError(
                    HTTPStatus.BAD_REQUEST,
                    "RESOURCE_ALREADY_EXISTS",
                    f"Registered model '{name}' already exists.",
                )
            if name is None or len(name.split(".")) != 3:
                raise _invalid(
                    f"Model name '{name}' must specify all three levels: catalog.schema.model"
                )
            self.models[name] = {"name": name, "created": _now(), "aliases": {}}
            return {"registered_model": self._model_json(self.models[name])}
        if (method, endpoint) == ("GET", "registered-models/get"):
            return {"registered_model": self._model_json(self._model(name))}
        if endpoint == "registered-models:is-databricks-sdk-models-artifact-repository-enabled":
            return {"is_databricks_sdk_models_artifact_repository_enabled": False}
        if (method, endpoint) == ("POST", "registered-models/alias"):
            self._version(name, body["version"])
            self._model(name)["aliases"][body["alias"]] = str(body["version"])
            return {}
        if (method, endpoint) == ("GET", "registered-models/alias"):
            version = self._model(name)["aliases"].get(query.get("alias"))
            if version is None:
                raise _missing(f"Alias '{query.get('alias')}' does not exist for model '{name}'.")
            return {"model_version": self._version_json(self._version(name, version))}
        if (method, endpoint) == ("POST", "model-versions/create"):
            self._model(name)
            number = str(1 + max((int(v) for n, v in self.versions if n == name), default=0))
            self.versions[(str(name), number)] = {
                "name": name,
                "version": number,
                "creation_timestamp": _now(),
                "last_updated_timestamp": _now(),
                "source": body.get("source", ""),
                "run_id": body.get("run_id", ""),
                "status": "PENDING_REGISTRATION",
                "storage_location": _model_root(str(name), number),
                "tags": {tag["key"]: tag.get("value", "") for tag in body.get("tags", [])},
            }
            return {"model_version": self._version_json(self.versions[(str(name), number)])}
        if (method, endpoint) == ("POST", "model-versions/generate-temporary-credentials"):
            self._version(name, body["version"])
            return {"credentials": {"storage_mode": "DEFAULT_STORAGE"}}
        if (method, endpoint) == ("POST", "model-versions/finalize"):
            version = self._version(name, body["version"])
            version["status"] = "READY"
            return {"model_version": self._version_json(version)}
        if (method, endpoint) == ("GET", "model-versions/get"):
            return {"model_version": self._version_json(self._version(name, query.get("version")))}
        if (method, endpoint) == ("POST", "model-versions/set-tag"):
            self._version(name, body["version"])["tags"][body["key"]] = body.get("value", "")
            return {}
        if (method, endpoint) == ("GET", "model-versions/search"):
            condition = query.get("filter", "")
            self.searches.append(condition)
            match = _ONE_CONDITION.match(condition)
            if match is None:
                raise _invalid(
                    f"Unsupported filter '{condition}': search supports a single condition, "
                    "name='<model>' or run_id='<run id>'"
                )
            key, value = match.groups()
            found = [v for v in self.versions.values() if v[key] == value]
            return {"model_versions": [self._version_json(v, with_tags=False) for v in found]}
        raise ApiError(HTTPStatus.NOT_FOUND, "ENDPOINT_NOT_FOUND", f"{method} {path}")

    def _file_service(
        self, method: str, path: str, body: dict[str, Any], base_url: str
    ) -> dict[str, Any]:
        if method == "POST" and path in (
            "/api/2.0/fs/create-upload-url",
            "/api/2.0/fs/create-download-url",
        ):
            target = body["path"]
            if path.endswith("download-url") and not (self.root / target.lstrip("/")).is_file():
                raise _missing(f"File {target} does not exist", code="NOT_FOUND")
            url = f"{base_url}{PRESIGNED}{quote(target)}"
            return {"url": url, "headers": [{"name": PRESIGNED_HEADER, "value": "1"}]}
        if method == "GET" and path.startswith(DIRECTORIES + "/"):
            folder = "/" + path.removeprefix(DIRECTORIES + "/").rstrip("/")
            local = self.root / folder.lstrip("/")
            if not local.is_dir():
                raise _missing(f"Directory {folder} does not exist", code="NOT_FOUND")
            contents = [
                {
                    "path": f"{folder}/{child.name}",
                    "is_directory": child.is_dir(),
                    **({} if child.is_dir() else {"file_size": child.stat().st_size}),
                }
                for child in sorted(local.iterdir())
            ]
            return {"contents": contents}
        raise ApiError(HTTPStatus.NOT_FOUND, "ENDPOINT_NOT_FOUND", f"{method} {path}")


def _model_root(name: str, version: str) -> str:
    return "/Models/" + name.replace(".", "/") + f"/{version}"
