"""The tidings-server command as an operator runs it: a real process, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.harness import SECRETS_ENV, Api
from tidings.v1 import hooks_pb2

BIN = Path(sys.executable).parent / "tidings-server"


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [str(BIN), "serve", "--listen", "127.0.0.1:0", "--store", f"sqlite:///{tmp_path / 'db.sqlite3'}", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **SECRETS_ENV},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"listening on port (\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.wait(10)
    pytest.fail(f"server exited with {proc.returncode} before listening")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal(tmp_path: Path, signum: signal.Signals) -> None:
    proc, port = start(tmp_path, "--allow-http", "--allow-private-destinations")
    api = Api.connect(port)
    hook = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent="companies/1/projects/2",
            hook=hooks_pb2.Hook(destination_url="http://127.0.0.1:9/in", payload_format="procore.v3"),
        )
    )
    api.channel.close()
    proc.send_signal(signum)
    assert proc.wait(15) == 0
    assert proc.stderr is not None
    logs = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    assert any(entry["message"] == "stopped" for entry in logs)
    # What was stored is there for the next process.
    proc, port = start(tmp_path)
    api = Api.connect(port)
    assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name)).destination_url == "http://127.0.0.1:9/in"
    api.channel.close()
    proc.terminate()
    assert proc.wait(15) == 0


def test_secure_defaults_refuse_internal_http_destinations(tmp_path: Path) -> None:
    proc, port = start(tmp_path)
    api = Api.connect(port)
    try:
        for url, problem in [
            ("http://hooks.example.com/in", "must use https"),
            ("https://127.0.0.1/in", "loopback"),
            ("https://10.1.2.3/in", "private"),
            ("https://169.254.169.254/latest", "link-local"),
            ("https://localhost:8443/in", "loopback"),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                api.hooks.CreateHook(
                    hooks_pb2.CreateHookRequest(
                        parent="companies/1", hook=hooks_pb2.Hook(destination_url=url, payload_format="procore.v4")
                    )
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "hook.destination_url" in (err.value.details() or "")
            assert problem in (err.value.details() or "")
    finally:
        api.channel.close()
        proc.terminate()
        proc.wait(15)


def test_refuses_non_loopback_listen_address_without_auth(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN), "serve", "--listen", "0.0.0.0:0", "--store", "memory:", "--no-auth"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    proc, port = start(tmp_path)
    try:
        result = subprocess.run(
            [str(BIN), "serve", "--listen", f"127.0.0.1:{port}", "--store", "memory:"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        # One line, ours: no gRPC log line or traceback before it.
        assert result.stderr.splitlines() == [
            f"tidings-server: --listen: 127.0.0.1:{port} is already in use (another tidings-server?); pick another"
            f" address, e.g. --listen 127.0.0.1:{port + 1} (with make: make serve LISTEN=127.0.0.1:{port + 1})"
        ]
    finally:
        proc.terminate()
        proc.wait(15)


def test_plugins_lists_distributions_and_versions() -> None:
    result = subprocess.run([str(BIN), "plugins"], capture_output=True, text=True, timeout=60, check=True)
    assert re.search(r"^procore\s+tidings-procore 0\.1\.0\s+loaded$", result.stdout, re.M)
    assert re.search(r"^sqlite\s+tidings-server 0\.1\.0\s+loaded$", result.stdout, re.M)
    assert "procore.v2, procore.v3, procore.v4" in result.stdout
    assert re.search(r"^postgresql\s+tidings-postgresql 0\.1\.0\s+loaded$", result.stdout, re.M)
    assert "storage backends: memory:, postgres:, postgresql:, sqlite:" in result.stdout
    assert "warning" not in result.stderr  # a catalog is installed


@pytest.mark.parametrize("grace", ["nan", "inf", "-1", "0"])
def test_refuses_senseless_numbers(grace: str) -> None:
    result = subprocess.run(
        [str(BIN), "serve", "--store", "memory:", "--shutdown-grace", grace],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "argument --shutdown-grace: must be a positive number" in result.stderr


def test_help_explains_every_serve_option() -> None:
    result = subprocess.run([str(BIN), "serve", "--help"], capture_output=True, text=True, timeout=60, check=True)
    for option in ("--listen", "--store", "--allow-http", "--allow-private-destinations", "--shutdown-grace"):
        assert option in result.stdout
