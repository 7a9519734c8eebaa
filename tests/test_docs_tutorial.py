"""The tutorial in docs/plugins.md, run as written: its files are taken from the page's code
blocks (the ones whose info string names a path under ``acme-text/``), the kit runs over the
format, the distribution is installed the way pip leaves one (metadata on sys.path), and its
``receive.py`` and ``try_it.py`` run as programs against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ServerThread
from tidings_server.app import Config

pytest_plugins = ["pytester"]

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
_BLOCK = re.compile(r"^```\w+ (acme-text/\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MODULE = "tidings_acme_text"


def tutorial_files() -> dict[str, str]:
    return {path: body for path, body in _BLOCK.findall(DOCS.read_text())}


def test_the_tutorial_has_every_file_it_talks_about() -> None:
    assert sorted(tutorial_files()) == [
        "acme-text/pyproject.toml",
        "acme-text/receive.py",
        "acme-text/src/tidings_acme_text/__init__.py",
        "acme-text/src/tidings_acme_text/plugin.py",
        "acme-text/tests/test_contract.py",
        "acme-text/try_it.py",
    ]


@pytest.fixture
def acme_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The tutorial's folder, written out and installed: its package importable and its entry
    points (from its own pyproject.toml) in a dist-info directory on sys.path."""
    root = tmp_path / "work"
    for path, body in tutorial_files().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    project = tomllib.loads((root / "acme-text" / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    points = "".join(f"{name} = {value}\n" for name, value in project["entry-points"]["tidings"].items())
    (info / "entry_points.txt").write_text(f"[tidings]\n{points}")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(root / "acme-text" / "src"))
    yield root / "acme-text"
    for name in [m for m in sys.modules if m == MODULE or m.startswith(f"{MODULE}.")]:
        del sys.modules[name]


def test_step_3_the_contract_tests_pass(acme_text: Path, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_contract=(acme_text / "tests" / "test_contract.py").read_text())
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=34, skipped=7)  # the JSON checks skip: its body is text/plain


def _lines(process: subprocess.Popen[str], into: list[str], arrived: threading.Condition) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        with arrived:
            into.append(line)
            arrived.notify_all()


def test_steps_4_and_5_listed_and_delivering(acme_text: Path, server_config: Config) -> None:
    server = ServerThread(server_config).start()
    receiver = subprocess.Popen(
        [sys.executable, str(acme_text / "receive.py"), "0"], stdout=subprocess.PIPE, text=True, cwd=acme_text
    )
    printed: list[str] = []
    arrived = threading.Condition()
    reader = threading.Thread(target=_lines, args=(receiver, printed, arrived), daemon=True)
    reader.start()
    try:
        with arrived:
            assert arrived.wait_for(lambda: len(printed) >= 1, timeout=10), "receive.py did not start"
        url = printed[0].removeprefix("listening on ").strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/in", url)
        tried = subprocess.run(
            [sys.executable, str(acme_text / "try_it.py"), f"127.0.0.1:{server.port}", url],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            cwd=acme_text,
        )
        out = tried.stdout.splitlines()
        assert "acme.text.v1               acme-text 0.1.0  text/plain; charset=utf-8" in out
        [published] = [line for line in out if line.startswith("published ")]
        event_id = published.split()[1]
        assert published == f"published {event_id} to 1 hook"
        with arrived:
            assert arrived.wait_for(lambda: len(printed) >= 2, timeout=10), "nothing was delivered"
        assert printed[1] == f"text/plain; charset=utf-8 RFIs 54321 update in project 6778 ({event_id})\n"
    finally:
        receiver.kill()
        receiver.wait(10)
        server.stop()
