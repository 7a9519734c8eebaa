"""The console outlives its server, speaks the server's errors plainly, reads at phone width,
and every control has a name a screen reader can say."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import ConsoleProcess, ServerProcess, sign_in, start_console
from tests.console.test_console_e2e import make_hook, publish
from tests.http_sink import Sink
from tidings_client import Client


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path).start()
    yield srv
    srv.stop()


@pytest.fixture
def own_console(own_server: ServerProcess, tmp_path: Path) -> Iterator[ConsoleProcess]:
    proc = start_console(tmp_path, own_server.target)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.log.read_text(), proc.log.read_text()


def test_the_console_survives_the_server_going_away_and_coming_back(
    page: Page, own_server: ServerProcess, own_console: ConsoleProcess, sink: Sink
) -> None:
    project = "companies/8/projects/6778"
    with Client(own_server.target) as client:
        hook = make_hook(client, project, sink.url())
    sign_in(page, own_console, f"/{hook}")
    expect(page.locator("#live-status")).to_contain_text("Live updates: on")

    own_server.stop()
    expect(page.locator("#live-status")).to_contain_text(re.compile("paused: UNAVAILABLE|reconnecting"))
    answer = page.reload()
    assert answer is not None
    assert answer.status == 503
    expect(page.get_by_role("alert")).to_contain_text("UNAVAILABLE")
    expect(page.get_by_text("The console keeps running")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("Traceback")

    own_server.start()
    deadline = time.monotonic() + 30
    while (answer := page.reload()) is not None and answer.status != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert answer is not None
    assert answer.status == 200
    expect(page.get_by_role("heading", level=1)).to_contain_text("ERP sync")
    expect(page.locator("#live-status")).to_contain_text("Live updates: on")
    with Client(own_server.target) as client:
        publish(client, project, "RFIs", 54321, "update")
    expect(page.locator("table.events tbody tr[data-delivery]")).to_have_count(1)


def test_the_console_speaks_as_the_profile_says(
    page: Page, server: ServerProcess, client: Client, tmp_path: Path, project: str, sink: Sink
) -> None:
    """Target and parent come from the admin's profile, as they do for every other command."""
    config = tmp_path / "config.toml"
    config.write_text(
        f'default_profile = "local"\n[profiles.local]\ntarget = "{server.target}"\nparent = "{project}"\n'
    )
    make_hook(client, project, sink.url())
    console = start_console(tmp_path, None, config)
    try:
        assert f"/{project}?token=" in console.url
        page.goto(console.url)
        expect(page).to_have_url(f"{console.base}/{project}/hooks")
        expect(page.get_by_role("row", name=re.compile("ERP sync"))).to_be_visible()
        expect(page.get_by_text(f"server {server.target}")).to_be_visible()
    finally:
        console.stop()


def test_server_errors_are_shown_with_their_code(page: Page, console: ConsoleProcess, project: str) -> None:
    sign_in(page, console, f"/{project}/hooks/no-such-hook")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("NOT_FOUND")
    expect(alert).to_contain_text("no-such-hook")
    expect(page.locator("body")).not_to_contain_text("Traceback")


def _unnamed_controls(page: Page) -> list[str]:
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a'))
              .filter((el) => {
                const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
                  || el.getAttribute('aria-labelledby') || (el.textContent || '').trim();
                return !named;
              }).map((el) => el.outerHTML.slice(0, 120))"""
        )
    )


@pytest.mark.parametrize("page", [{"width": 390, "height": 844}], indirect=True, ids=["phone"])
def test_pages_read_at_phone_width_and_every_control_is_named(
    page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink
) -> None:
    hook = make_hook(client, project, sink.url())
    publish(client, project, "RFIs", 54321, "update")
    for path in (f"/{project}/hooks", f"/{project}/hooks:new", f"/{hook}:events", f"/{hook}:edit", f"/{hook}"):
        sign_in(page, console, path)
        assert _unnamed_controls(page) == [], path
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, (path, overflow)
    expect(page.locator("table.events tbody tr[data-delivery]")).to_have_count(1)


def test_the_keyboard_reaches_and_works_the_controls(page: Page, console: ConsoleProcess, project: str) -> None:
    sign_in(page, console, f"/{project}/hooks")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Create Hook":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Create Hook")).to_be_visible()
    page.get_by_label("Search resources").focus()
    page.keyboard.type("submittals")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(page.locator("#event-table tbody tr:visible input:checked")).to_have_count(1)


def test_the_plain_install_runs_without_the_console_extra() -> None:
    """Without Starlette, Jinja2 and uvicorn the library and every other command work, and
    ``tidings console`` says which extra to install."""
    probe = (
        "import sys\n"
        "for name in ('starlette', 'jinja2', 'uvicorn'): sys.modules[name] = None\n"
        "import importlib, tidings_client\nm = importlib.import_module('tidings_client.cli.main')\n"
        "loaded = sorted({k.split('.')[0] for k, v in sys.modules.items() if v} & {'starlette', 'jinja2', 'uvicorn'})\n"
        "print('loaded', loaded)\n"
        "print('help', m.run(['console', '--help']))\n"
        "print('run', m.run(['--target', '127.0.0.1:1', 'console', '--no-browser']))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "loaded []" in result.stdout, result
    assert "help 0" in result.stdout
    assert "run 1" in result.stdout
    assert "pip install 'tidings-client[console]'" in result.stderr
    assert "Traceback" not in result.stderr
