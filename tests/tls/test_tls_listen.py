"""The listen rule as a pure function: off loopback, plaintext must be asked for by name.

Without authentication (``--no-auth``) a non-loopback address is refused whatever the transport
(tests/auth). Tests stay on loopback: the one real ``serve`` off loopback below names an address
this machine does not have, so it warns and then cannot bind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tidings_server.app import ConfigError, check_listen, plaintext_warning

SERVER = Path(sys.executable).parent / "tidings-server"


@pytest.mark.parametrize("listen", ["127.0.0.1:50051", "localhost:0", "[::1]:6000", "127.8.9.10:1"])
def test_loopback_is_served_plaintext_or_tls(listen: str) -> None:
    assert check_listen(listen) is True
    assert check_listen(listen, tls=True) is True
    assert plaintext_warning(True, tls=False) is None


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "10.1.2.3:50051", "[::]:50051", "[2001:db8::1]:443"])
def test_plaintext_off_loopback_needs_the_flag(listen: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_listen(listen)
    assert str(refused.value).startswith("--listen: ")
    assert "--allow-plaintext" in str(refused.value)
    assert "--tls-cert" in str(refused.value)
    for allowed in ({"allow_plaintext": True}, {"tls": True}):
        assert check_listen(listen, **allowed) is False  # served, and said not to be loopback


def test_plaintext_off_loopback_is_warned_of() -> None:
    warning = plaintext_warning(False, tls=False)
    assert warning is not None
    assert "--allow-plaintext" in warning
    assert "unencrypted" in warning
    assert plaintext_warning(False, tls=True) is None


@pytest.mark.parametrize("listen", ["nohost", "127.0.0.1:99999", "example.com:50051"])
def test_malformed_addresses_are_refused_first(listen: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_listen(listen, tls=True, allow_plaintext=True)
    assert str(refused.value).startswith("--listen: ")


def test_a_server_started_plaintext_off_loopback_warns_before_it_listens() -> None:
    """The real ``serve``: 198.51.100.1 (TEST-NET-2, documentation only) is no address of this
    machine, so the bind fails and nothing is ever served or sent; the warning comes first."""
    result = subprocess.run(
        [str(SERVER), "serve", "--listen", "198.51.100.1:0", "--store", "memory:", "--allow-plaintext"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TIDINGS_NO_AUTH": "0"},  # the suite's servers run without
    )
    assert result.returncode == 2, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    warned = [line for line in lines if line["message"].startswith("serving the control plane unencrypted")]
    assert [(w["level"], w["listen"]) for w in warned] == [("warning", "198.51.100.1:0")]
    assert "--allow-plaintext" in warned[0]["message"]
    assert lines.index(warned[0]) == 0  # said at start, before anything else
    assert result.stderr.splitlines()[-1].startswith("tidings-server: cannot listen on 198.51.100.1:0")
    refused = subprocess.run(
        [str(SERVER), "serve", "--listen", "198.51.100.1:0", "--store", "memory:"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TIDINGS_NO_AUTH": "0"},
    )
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "tidings-server: --listen: 198.51.100.1 is not a loopback address; serve it with TLS (--tls-cert and"
        " --tls-key), or pass --allow-plaintext to serve it unencrypted on purpose"
    ]
