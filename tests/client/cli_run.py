"""Running the real ``tidings`` and ``tidings-server`` commands as subprocesses, as an admin would."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
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


def in_terminal(cli: Cli, *args: str, columns: int, lines: int, timeout: float = 30) -> tuple[int, str]:
    """Run ``tidings ARGS`` on a pseudo-terminal of ``columns`` × ``lines``; its exit code and
    everything it wrote there, escape sequences included (``screen_lines`` removes them)."""
    controller, terminal = pty.openpty()
    env = cli.env(COLUMNS=str(columns), LINES=str(lines), TERM="xterm-256color")
    proc = subprocess.Popen([str(TIDINGS), *args], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    screen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            screen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    return proc.wait(10), screen.decode("utf-8", "replace")


class Terminal:
    """``tidings ARGS`` running on a pseudo-terminal of ``columns`` × ``lines``, read as it
    draws, for what a person sees while a command goes on (a live watch across a restart)."""

    def __init__(self, cli: Cli, *args: str, columns: int, lines: int) -> None:
        self._controller, terminal = pty.openpty()
        env = cli.env(COLUMNS=str(columns), LINES=str(lines), TERM="xterm-256color")
        self.proc = subprocess.Popen(
            [str(TIDINGS), *args], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, env=env
        )
        os.close(terminal)
        self._drawn = b""
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._controller, 65536)
            except OSError:  # the terminal closed: the command is done
                chunk = b""
            with self._changed:
                self._drawn += chunk
                self._changed.notify_all()
            if not chunk:
                return

    @property
    def drawn(self) -> str:
        """Everything written so far, escape sequences included."""
        with self._changed:
            return self._drawn.decode("utf-8", "replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        with self._changed:
            found = self._changed.wait_for(lambda: text in "".join(screen_lines(self.drawn)), timeout)
        assert found, (text, screen_lines(self.drawn)[-5:])

    def frames(self) -> list[list[str]]:
        """The screens a live display drew, one after another: each redraw starts by moving up
        over the last one and erasing it (``\\r``, then erase-line and cursor-up codes)."""
        return [screen_lines(f) for f in re.split(r"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)*", self.drawn)]

    def interrupt(self) -> int:
        """Ctrl-C, and the exit code."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(15)
        finally:
            os.close(self._controller)


def screen_lines(text: str) -> list[str]:
    """The non-blank lines of what a command drew on a terminal, without escape sequences."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [line for line in plain.replace("\r", "").split("\n") if line.strip()]


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
