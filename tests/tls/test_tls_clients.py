"""The bundled client, the ``tidings`` command (the documented ``prod`` profile, its flags,
completion) and the console against a real tidings server behind mutual TLS."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.tls.processes import server_process
from tests.tls_certs import Authority, Issued
from tidings_client import Client, Options, Retry, Tls, Unavailable

TIDINGS = Path(sys.executable).parent / "tidings"
SERVER = Path(sys.executable).parent / "tidings-server"
PROJECT = "companies/8/projects/6778"


@dataclass(frozen=True)
class Setup:
    target: str
    authority: Authority
    client: Issued
    config: Path  # a config file whose `prod` profile is the documented one, pointed at the server
    token: str  # an owner token of the server's store (the profile carries it)

    def tidings(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        return subprocess.run(
            [str(TIDINGS), *args], capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
            env={**clean, "TIDINGS_CONFIG": str(self.config), **env},
        )  # fmt: skip

    def ok(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        result = self.tidings(*args, **env)
        assert result.returncode == 0, result.stderr
        return result


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("tls-clients")
    authority = Authority(tmp / "ca")
    server, client = authority.server(), authority.client("admin", "admin")
    tls = [
        "--tls-cert",
        str(server.cert_path),
        "--tls-key",
        str(server.key_path),
        "--client-ca",
        str(authority.cert_path),
    ]
    store = f"sqlite:///{tmp / 'tidings.sqlite3'}"
    token = owner_token(store)
    with server_process(store, *tls) as process:
        target = f"127.0.0.1:{process.port}"
        config = tmp / "config.toml"
        config.write_text(
            f'default_profile = "prod"\n\n[profiles.prod]\ntarget = "{target}"\ntls = true\n'
            f'ca_cert = "{authority.cert_path}"\nclient_cert = "{client.cert_path}"\n'
            f'client_key = "{client.key_path}"\ntoken = "{token}"\nparent = "{PROJECT}"\n'
        )
        yield Setup(target, authority, client, config, token)


def owner_token(store: str) -> str:
    """An owner token made on the store before the server starts, as an operator makes the first."""
    made = subprocess.run(
        [str(SERVER), "tokens", "create", "--store", store, "--role", "owner", "--name", "tls-tests"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return made.stdout.strip()


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``Error:`` line of a usage error (exit 2), before anything was sent."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    return line


def test_the_documented_prod_profile_works(setup: Setup) -> None:
    created = setup.ok(
        "--profile", "prod", "--json", "hooks", "create", "--project", "8/6778", "--url", "http://127.0.0.1:9/in",
        "--format", "procore.v4", "--name", "over mutual TLS", "--event", "RFIs:update",
    ).stdout  # fmt: skip
    hook = json.loads(created)["hook"]["name"]
    listed = json.loads(setup.ok("--json", "hooks", "list", "--project", "8/6778").stdout)
    assert hook in [h["name"] for h in listed]


def test_the_flags_connect_without_a_profile(setup: Setup) -> None:
    a = setup.authority
    mine = ["--client-cert", str(setup.client.cert_path), "--client-key", str(setup.client.key_path)]
    for target in (setup.target, setup.target.replace("127.0.0.1", "localhost")):
        for tls in (["--tls", "--ca-file", str(a.cert_path)], ["--ca-cert", str(a.cert_path)]):
            setup.ok(
                "--config", "/dev/null", "--target", target, *tls, *mine, "hooks", "list", "--project", "8/6778",
                TIDINGS_TOKEN=setup.token,
            )  # fmt: skip
    # The server refuses the handshake without our certificate; plaintext never reaches it.
    no_cert = setup.tidings(
        "--timeout", "10", "--config", "/dev/null", "--target", setup.target, "--ca-file", str(a.cert_path),
        "hooks", "list", "--project", "8/6778",
    )  # fmt: skip
    assert "UNAVAILABLE" in one_line_error(no_cert, 5)
    plaintext = setup.tidings("--timeout", "10", "--plaintext", "hooks", "list", "--project", "8/6778")
    assert "UNAVAILABLE" in one_line_error(plaintext, 5)


def test_unusable_tls_files_are_a_usage_error_naming_them(setup: Setup) -> None:
    a, me = setup.authority, setup.client
    other = a.client("other", "other")
    line = usage_error(setup.tidings("--client-key", str(other.key_path), "hooks", "list", "--project", "8/6778"))
    assert f"--client-key: {other.key_path} is not the unencrypted key of the certificate in {me.cert_path}" in line
    line = usage_error(setup.tidings("--ca-cert", str(me.key_path), "hooks", "list", "--project", "8/6778"))
    assert f"--ca-cert: {me.key_path}: not PEM certificates" in line


def test_completion_reaches_the_server_over_tls(setup: Setup) -> None:
    hook = json.loads(
        setup.ok("--json", "hooks", "create", "--project", "8/6778", "--url", "http://127.0.0.1:9/c",
                 "--format", "procore.v4").stdout
    )["hook"]["name"]  # fmt: skip
    words = {"_TIDINGS_COMPLETE": "bash_complete", "COMP_WORDS": "tidings hooks show ", "COMP_CWORD": "3"}
    assert hook.rsplit("/", 1)[-1] in setup.ok(**words).stdout


def test_the_library_connects_with_tls_from_files(setup: Setup) -> None:
    a, me = setup.authority, setup.client
    mutual = Tls.from_files(a.cert_path, me.cert_path, me.key_path)
    with Client(options=Options(setup.target, mutual, token=setup.token)) as client:
        hook = client.create_hook(PROJECT, "http://127.0.0.1:9/lib", "procore.v4")
        assert hook.name in [h.name for h in client.list_hooks(PROJECT)]
    anonymous = Options(
        setup.target, Tls.from_files(a.cert_path), token=setup.token, retry=Retry(max_attempts=1), timeout=10
    )
    with Client(options=anonymous) as client, pytest.raises(Unavailable):
        client.get_hook(hook.name)


def test_the_console_talks_to_the_server_over_tls(setup: Setup, tmp_path: Path) -> None:
    hook = json.loads(
        setup.ok("--json", "hooks", "create", "--project", "8/6778", "--url", "http://127.0.0.1:9/console",
                 "--format", "procore.v4", "--name", "seen in the console").stdout
    )["hook"]["name"]  # fmt: skip
    out = tmp_path / "console.out"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    with out.open("w") as sink:
        console = subprocess.Popen(
            [str(TIDINGS), "--profile", "prod", "console", "--no-browser"], stdout=sink, stderr=subprocess.STDOUT,
            env={**clean, "TIDINGS_CONFIG": str(setup.config), "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"(http://127\.0\.0\.1:\d+/\S*\?token=\S+)", out.read_text())):
            assert console.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.05)
        with httpx.Client(follow_redirects=True, timeout=30) as browser:
            page = browser.get(found.group(1))
            assert page.status_code == 200, page.text
            hooks = browser.get(f"{page.url.scheme}://{page.url.netloc.decode()}/{PROJECT}/hooks")
        assert hooks.status_code == 200, hooks.text
        assert "seen in the console" in hooks.text
        assert hook.rsplit("/", 1)[-1] in hooks.text
    finally:
        console.terminate()
        console.wait(15)
    assert "Traceback" not in out.read_text(), out.read_text()
