"""The token's way through the tools, as an operator uses them: the first owner token from
``tidings-server tokens create``, then ``tidings`` with ``--token``, ``TIDINGS_TOKEN`` or a
profile's ``token`` against a real ``serve`` with auth on (its default)."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth.world import cli_token
from tests.client.cli_run import SERVER, Cli, assert_one_line_error
from tests.harness import SECRETS_ENV

DENIED = 6


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A server with auth on, the secret of its first owner token, and its log."""
    store = f"sqlite:///{tmp_path / 'tidings.sqlite3'}"
    owner = cli_token(store, "owner", "first owner")
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **SECRETS_ENV, "TIDINGS_NO_AUTH": "0"}
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [str(SERVER), "serve", "--listen", "127.0.0.1:0", "--store", store], stderr=sink, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while not (m := re.search(r"listening on port (\d+)", log.read_text())):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"127.0.0.1:{m[1]}", owner, log
    finally:
        proc.terminate()
        proc.wait(15)


def test_tokens_over_the_cli_with_flag_environment_and_profile(served: tuple[str, str, Path], tmp_path: Path) -> None:
    target, owner, log = served
    config = tmp_path / "config.toml"
    cli = Cli(target, config)
    started = time.monotonic()
    refused = cli("hooks", "list", "--project", "8/6778")
    assert_one_line_error(refused, DENIED, "no credentials")
    assert time.monotonic() - started < 20  # refused at once: UNAUTHENTICATED is never retried

    made = cli("--json", "--token", owner, "tokens", "create", "--name", "ingest", "--role", "viewer",
               "--scope", "companies/8")  # fmt: skip
    assert made.code == 0, made.err
    viewer = made.json()
    assert viewer["secret"].startswith("tdg_")
    assert viewer["role"] == "viewer"
    assert viewer["scope"] == "companies/8"

    by_env = cli("hooks", "list", "--project", "8/6778", env=cli.env(TIDINGS_TOKEN=viewer["secret"]))
    assert by_env.code == 0, by_env.err
    config.write_text(
        f'default_profile = "prod"\n[profiles.prod]\ntarget = "{target}"\ntoken = "{viewer["secret"]}"\n',
        encoding="utf-8",
    )
    by_profile = cli("hooks", "list", "--project", "8/6778")
    assert by_profile.code == 0, by_profile.err
    outside = cli("hooks", "list", "--company", "9")
    assert_one_line_error(outside, DENIED, "outside the scope")
    not_owner = cli("tokens", "list")
    assert_one_line_error(not_owner, DENIED, "may not manage tokens")

    listed = cli("--json", "--token", owner, "tokens", "list")
    assert listed.code == 0, listed.err
    assert {t["display_name"] for t in listed.json()} == {"first owner", "ingest"}
    assert all(t["secret"] == "" for t in listed.json())
    revoked = cli("--token", owner, "tokens", "revoke", viewer["name"])
    assert revoked.code == 0, revoked.err
    assert_one_line_error(cli("hooks", "list", "--project", "8/6778"), DENIED, "unknown or revoked")
    text = log.read_text()
    assert "control-plane change" in text
    assert viewer["secret"] not in text
    assert owner not in text


def test_an_owner_binds_a_client_certificate_with_the_cli(served: tuple[str, str, Path], tmp_path: Path) -> None:
    target, owner, _ = served
    cli = Cli(target, tmp_path / "config.toml")
    made = cli("--json", "--token", owner, "tokens", "create", "--name", "erp", "--role", "publisher",
               "--scope", "companies/8", "--client-cert-name", "spiffe://corp/erp")  # fmt: skip
    assert made.code == 0, made.err
    bound = made.json()
    assert (bound["client_cert_name"], bound["secret"], bound["role"]) == ("spiffe://corp/erp", "", "publisher")
    shown = cli("--token", owner, "tokens", "show", bound["name"])
    assert shown.code == 0, shown.err
    assert "client certificate" in shown.out
    assert "spiffe://corp/erp" in shown.out
    text = cli("--token", owner, "tokens", "create", "--name", "erp 2", "--role", "viewer",
               "--client-cert-name", "erp.internal")  # fmt: skip
    assert text.code == 0, text.err
    assert "tdg_" not in text.out + text.err  # no secret to show
    assert "callers presenting a verified client certificate named 'erp.internal' act as it" in text.err
    again = cli("--token", owner, "tokens", "create", "--name", "erp 3", "--role", "viewer",
                "--client-cert-name", "erp.internal")  # fmt: skip
    assert_one_line_error(again, 4, "ALREADY_EXISTS", "already bound to")
    viewer = cli("--json", "--token", owner, "tokens", "create", "--name", "v", "--role", "viewer").json()["secret"]
    refused = cli("--token", viewer, "tokens", "create", "--name", "x", "--role", "owner", "--client-cert-name", "x")
    assert_one_line_error(refused, DENIED, "may not manage tokens")


def test_no_auth_says_so_loudly_once_serving_with_how_to_make_the_first_token(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TIDINGS_NO_AUTH": "0"}
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [str(SERVER), "serve", "--listen", "127.0.0.1:0", "--store", "memory:", "--no-auth"], stderr=sink, env=env
        )
    try:
        deadline = time.monotonic() + 30
        while "listening on port" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        text = log.read_text()
        assert text.count("AUTHENTICATION IS OFF (--no-auth)") == 1
        assert "tidings-server tokens create --store URL --role owner" in text
    finally:
        proc.terminate()
        proc.wait(15)


def test_make_serve_runs_without_tokens_and_says_so_with_how_to_make_the_first(tmp_path: Path) -> None:
    """``make serve``, as typed at a prompt: one command, a loopback server with auth off, and
    the loud line once it serves, naming the command that makes the first owner token."""
    root = Path(__file__).resolve().parents[2]
    log = tmp_path / "make.log"
    dropped = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "TIDINGS_NO_AUTH", "TIDINGS_SECRETS_KEY")
    env = {**{k: v for k, v in os.environ.items() if k not in dropped}, "PYTHONUNBUFFERED": "1"}
    with log.open("w") as sink:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "serve", "LISTEN=127.0.0.1:0", "STORE=memory:"],
            cwd=root,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make and the server it starts: one group, stopped together
        )
    try:
        deadline = time.monotonic() + 60
        while "listening on port" not in log.read_text():
            assert make.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        warnings = [line for line in log.read_text().splitlines() if "AUTHENTICATION IS OFF" in line]
        assert len(warnings) == 1
        said = json.loads(warnings[0])
        assert said["level"] == "warning"
        assert "tidings-server tokens create --store URL --role owner --name NAME" in said["message"]
        assert "restart without --no-auth" in said["message"]
        # The key it encrypts secrets with (made on the first run) is the user's alone.
        assert stat.S_IMODE((root / "var" / "secrets.key").stat().st_mode) == 0o600
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(20)
