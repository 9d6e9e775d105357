"""The warm Spark Connect server's command and its refusals, without starting a JVM (the server
itself runs in test_cluster.py, which computes a graph through it)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pdm_assets.adapters import spark_server
from pdm_assets.adapters.spark import LOCAL_DEFAULT_CONF


def test_the_server_listens_on_loopback_with_the_local_session_settings(tmp_path: Path) -> None:
    settings = spark_server.server_properties(16002, {"spark.sql.shuffle.partitions": "4"})
    assert settings["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert settings["spark.connect.grpc.binding.port"] == "16002"
    # The runs' session settings live on the server: UTC, few shuffle partitions.
    assert settings["spark.sql.session.timeZone"] == "UTC"
    assert settings["spark.driver.memory"] == LOCAL_DEFAULT_CONF["spark.driver.memory"]
    assert settings["spark.sql.shuffle.partitions"] == "4"
    command = spark_server.server_command("local[2]", tmp_path / "spark.properties")
    assert command[command.index("--class") + 1] == spark_server.SERVER_CLASS
    assert command[command.index("--master") + 1] == "local[2]"
    assert command[command.index("--properties-file") + 1] == str(tmp_path / "spark.properties")
    # Settings (where object-store keys go) are never on the command line, for `ps` to show.
    assert "--conf" not in command
    assert command[-1] == "spark-internal"


def test_the_server_gets_only_the_variables_it_needs_and_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("PATH", "/usr/bin")
    env = spark_server.server_environment(tmp_path / "jdk" / "bin" / "java", "the-token")
    assert "DATABRICKS_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["PATH"] == "/usr/bin"
    assert env["SPARK_CONNECT_AUTHENTICATE_TOKEN"] == "the-token"
    assert set(env) <= {
        *spark_server.SERVER_ENVIRONMENT,
        "SPARK_HOME",
        "SPARK_LOCAL_IP",
        "PYSPARK_PYTHON",
        "JAVA_HOME",
        "SPARK_CONNECT_AUTHENTICATE_TOKEN",
    }


def test_private_files_are_created_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old")
    path.chmod(0o644)
    spark_server._write_private(path, "secret")
    assert path.read_text() == "secret"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_port_taken_by_another_program_is_refused_by_name(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"port {port} on 127.0.0.1 is taken"):
            spark_server.start(tmp_path, port=port)


def test_stopping_when_nothing_runs_says_so(tmp_path: Path) -> None:
    assert spark_server.stop(tmp_path) is False
    (tmp_path / "spark-connect").mkdir()
    # A pid file of a process that is gone is not a running server.
    (tmp_path / "spark-connect" / "server.pid").write_text("999999999")
    assert spark_server.stop(tmp_path) is False
    # localhost: pyspark keeps a plain channel (no TLS) to it when a token is set.
    assert spark_server.connect_url(15002) == "sc://localhost:15002"


def test_without_java_the_command_fails_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = spark_server.main(["start", "--home", str(tmp_path), "--port", str(port)])
    assert code == 1
    assert "Spark needs Java, and none was found" in caplog.text


def test_a_pid_file_naming_another_live_process_is_not_the_server(tmp_path: Path) -> None:
    folder = tmp_path / "spark-connect"
    folder.mkdir()
    # This test's own process: alive, but not a Spark Connect server; stop must not signal it.
    (folder / "server.pid").write_text(str(os.getpid()))
    assert spark_server.status(tmp_path) is None
    assert spark_server.stop(tmp_path) is False
    (folder / "server.pid").write_text("0")
    assert spark_server.stop(tmp_path) is False
