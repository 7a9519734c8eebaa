"""Running the real ``tidings`` and ``tidings-server`` commands as subprocesses, as an admin would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness import SECRETS_ENV

TIDINGS = Path(sys.executable).parent / "tidings"
SERVER = Path(sys.executable).parent / "tidings-server"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """The ``tidings`` command pointed at one server, isolated from the user's config and env."""

    target: str
    config: Path

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_") and k != "COLUMNS"}
        return {**base, "TIDINGS_TARGET": self.target, "TIDINGS_CONFIG": str(self.config), **extra}

    def __call__(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [str(TIDINGS), *args],
            capture_output=True,
            text=True,
            input=input if input is not None else "",
            env=env or self.env(),
            timeout=60,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.code == 0, f"tidings {' '.join(args)} exited {result.code}: {result.err}"
        return result


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """A failed command says what went wrong in one line, never with a traceback."""
    assert result.code == code, (result.code, result.err)
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@contextmanager
def server_process(tmp: Path, listen: str = "127.0.0.1:0") -> Iterator[str]:
    """A real ``tidings-server serve`` on a free loopback port (or ``listen``) with its own SQLite
    file; a second one on the same ``tmp`` and ``listen`` is the same server restarted."""
    log = tmp / "server.log"
    with log.open("a") as sink:
        start = sink.tell()
        proc = subprocess.Popen(
            [
                str(SERVER),
                "serve",
                "--listen",
                listen,
                "--store",
                f"sqlite:///{tmp / 'tidings.sqlite3'}",
                "--allow-http",
                "--allow-private-destinations",
            ],
            stderr=sink,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **SECRETS_ENV},
        )
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            m = re.search(r"listening on port (\d+)", log.read_text()[start:])
            if m:
                port = int(m.group(1))
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text()[start:]}")
            else:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)
