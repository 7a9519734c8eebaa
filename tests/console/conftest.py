"""Fixtures for the console's browser tests: a real tidings-server process, the real
``tidings console`` command in front of it, a real receiver on loopback, and Debian's Chromium
driven by Playwright. Each test leaves a screenshot of its last page in test-artifacts/console/."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect, sync_playwright

from tests.harness import SECRETS_ENV
from tests.http_sink import Sink, running_sink
from tests.ports import free_port
from tidings_client import Client

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
BIN = Path(sys.executable).parent


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen[bytes], what: str) -> re.Match[str]:
    deadline = time.monotonic() + 30
    while True:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start: {log.read_text()}")
        time.sleep(0.05)


@dataclass
class ServerProcess:
    """``tidings-server serve`` on a fixed loopback port, so it can stop and come back there."""

    tmp: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        log = self.tmp / "server.log"
        with log.open("w") as sink:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "tidings-server"),
                    "serve",
                    "--listen",
                    self.target,
                    "--store",
                    f"sqlite:///{self.tmp / 'tidings.sqlite3'}",
                    "--allow-http",
                    "--allow-private-destinations",
                ],
                stderr=sink,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **SECRETS_ENV},
            )
        _wait_for(log, r"listening on port \d+", self.proc, "tidings-server")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(15)
            self.proc = None


@dataclass
class ConsoleProcess:
    """The real ``tidings console --no-browser``; ``url`` is the one it printed, secret included."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def base(self) -> str:
        found = re.match(r"http://[^/]+", self.url)
        assert found
        return found.group(0)

    @property
    def secret(self) -> str:
        return self.url.split("token=", 1)[1]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


def start_console(tmp: Path, target: str | None, config: Path | None = None) -> ConsoleProcess:
    """The console for ``target``, or for what the config file's default profile names."""
    out = tmp / "console.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(TIDINGS_CONFIG=str(config or tmp / "no-config.toml"), PYTHONUNBUFFERED="1")
    if target is not None:
        env["TIDINGS_TARGET"] = target
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [str(BIN / "tidings"), "console", "--no-browser"], stdout=sink, stderr=subprocess.STDOUT, env=env
        )
    found = _wait_for(out, r"(http://127\.0\.0\.1:\d+/\S*\?token=\S+)", proc, "tidings console")
    return ConsoleProcess(proc, found.group(1), out)


@pytest.fixture(scope="session")
def chromium() -> Path:
    # A browser test that skips proves nothing: without the browser, fail and say how to get it.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)")
    return CHROMIUM


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def console(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    proc = start_console(tmp_path_factory.mktemp("console"), server.target)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log.read_text(), proc.log.read_text()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    """The public library, for what the tests arrange and check around the browser."""
    with Client(server.target) as c:
        yield c


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright, chromium: Path) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser profile at 1280 px; the test's last page is saved as a screenshot."""
    viewport: ViewportSize = getattr(request, "param", None) or ViewportSize(width=1280, height=900)
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    pg = context.new_page()
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


_projects = itertools.count(7000)


@pytest.fixture
def project() -> str:
    """The test's own project, ``companies/8/projects/N``, so tests sharing a server stay apart."""
    return f"companies/8/projects/{next(_projects)}"


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def sign_in(page: Page, console: ConsoleProcess, path: str = "/") -> None:
    """Open the printed URL (which sets the session cookie), then ``path``."""
    page.goto(console.url)
    if path != "/":
        page.goto(console.base + path)
