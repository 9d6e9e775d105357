"""One file-system layer for what the pipeline lists and reads outside Spark: fsspec.

A landing folder may be a local folder or an object-store URI (`abfss://`, `s3a://`, `dbfs:/`,
a `/Volumes/...` path on Databricks): the landing sensor lists its day folders and the sources
read headers and markers through the same calls, whatever the location. Spark reads the data
files itself, through Hadoop's file systems, from the same location strings.

Local paths and `file://` URIs work with fsspec alone; other schemes need their fsspec
implementation installed (adlfs for abfss://, s3fs for s3:// and s3a://), as on the cluster
that reads them.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
from collections.abc import Mapping
from typing import IO, Any

import fsspec
from fsspec.spec import AbstractFileSystem

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def is_uri(location: str) -> bool:
    """True for abfss://..., s3://..., dbfs:/..., file:/...; False for a plain folder path."""
    return bool(_URI.match(location))


def fs_and_path(location: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec file system of a location and the path inside it."""
    fs, path = fsspec.core.url_to_fs(location)
    return fs, path


def join(location: str, *parts: str) -> str:
    """`location/part/...`, keeping a URI's scheme and authority."""
    if is_uri(location):
        return "/".join([location.rstrip("/"), *parts])
    return posixpath.join(location, *parts)


def exists(location: str) -> bool:
    fs, path = fs_and_path(location)
    return bool(fs.exists(path))


def is_file(location: str) -> bool:
    fs, path = fs_and_path(location)
    return bool(fs.isfile(path))


def is_dir(location: str) -> bool:
    fs, path = fs_and_path(location)
    return bool(fs.isdir(path))


def child_dirs(location: str) -> list[str]:
    """The names of the folders directly inside `location` ([] if it does not exist)."""
    fs, path = fs_and_path(location)
    if not fs.isdir(path):
        return []
    entries = fs.ls(path, detail=True)
    return sorted(
        posixpath.basename(str(entry["name"]).rstrip("/"))
        for entry in entries
        if entry.get("type") == "directory"
    )


def child_files(location: str, suffix: str = "") -> list[str]:
    """The files directly inside `location` whose names end with `suffix`, as full locations
    ([] if it does not exist); names starting with a dot or an underscore (a writer's temporary
    file, a marker) are left out."""
    fs, path = fs_and_path(location)
    if not fs.isdir(path):
        return []
    names = sorted(
        posixpath.basename(str(entry["name"]))
        for entry in fs.ls(path, detail=True)
        if entry.get("type") == "file"
    )
    return [
        join(location, name)
        for name in names
        if name.endswith(suffix) and not name.startswith((".", "_"))
    ]


# What a file system reports that changes when a file is written again: size, modification time,
# and an object store's ETag or version where it has one.
_IDENTITY_FIELDS = ("size", "mtime", "LastModified", "last_modified", "ETag", "etag", "version_id")


def identity(location: str) -> str:
    """A short text that changes whenever the file at `location` is written again."""
    fs, path = fs_and_path(location)
    return identity_of(fs.info(path))


def identity_of(details: Mapping[str, object]) -> str:
    """`identity` of a file from the details a listing gave for it (no call of its own)."""
    return ";".join(f"{name}={details[name]}" for name in _IDENTITY_FIELDS if name in details)


def child_entries(location: str) -> dict[str, dict[str, Any]]:
    """Each entry directly inside `location`, by name, with the details of one listing ({} if
    the folder does not exist): the type ("file", "directory"), the size, the modification
    time or version the file system reports."""
    fs, path = fs_and_path(location)
    try:
        entries = fs.ls(path, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {posixpath.basename(str(entry["name"]).rstrip("/")): entry for entry in entries}


def open_binary(location: str) -> IO[bytes]:
    fs, path = fs_and_path(location)
    handle: IO[bytes] = fs.open(path, "rb")
    return handle


def read_text(location: str) -> str:
    with open_binary(location) as handle:
        return handle.read().decode("utf-8")


def data_lines(location: str) -> int:
    """Lines with any text in a file, its header included (blank lines carry no row)."""
    count = 0
    with open_binary(location) as handle:
        for line in handle:
            if line.strip():
                count += 1
    return count


def write_text(location: str, text: str) -> None:
    """Write a whole text file so a reader sees the old file or the new one, never a part: a
    local file goes to a temporary name beside it and is renamed; an object store's put is
    already whole."""
    fs, path = fs_and_path(location)
    fs.makedirs(posixpath.dirname(path) or ".", exist_ok=True)
    if is_uri(location) and not location.startswith("file:"):
        fs.pipe_file(path, text.encode("utf-8"))
        return
    folder, name = os.path.split(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=folder or ".")
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(temporary, path)


VOLUMES_ROOT = "/Volumes/"


def is_volume_path(path: str) -> bool:
    """A Unity Catalog Volume path: `/Volumes/<catalog>/<schema>/<volume>/...`."""
    return path.startswith(VOLUMES_ROOT) and len([p for p in path.split("/") if p]) >= 4
