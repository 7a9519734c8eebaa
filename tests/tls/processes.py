"""A real ``tidings-server serve`` process for the TLS tests: its port, its pid for signals, and
its log lines as it writes them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import SECRETS_ENV

SERVER = Path(sys.executable).parent / "tidings-server"


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    port: int = 0
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def logged(self, message: str, timeout: float = 30.0) -> dict[str, object]:
        """The first JSON log line whose message contains ``message``, waiting for it."""

        def find() -> dict[str, object] | None:
            for line in self.lines:
                if line.startswith("{") and message in (entry := json.loads(line)).get("message", ""):
                    return dict(entry)
            return None

        with self.changed:
            assert self.changed.wait_for(lambda: find() is not None, timeout), (
                f"no log line {message!r}:\n{''.join(self.lines)}"
            )
            found = find()
            assert found is not None
            return found

    def count(self, message: str) -> int:
        with self.changed:
            return sum(1 for line in self.lines if message in line)


@contextmanager
def server_process(store: str, *args: str) -> Iterator[ServerProcess]:
    """``tidings-server serve`` on a free loopback port with ``args``; stopped with SIGTERM after."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [str(SERVER), "serve", "--listen", "127.0.0.1:0", "--store", store, "--allow-http",
         "--allow-private-destinations", *args],
        stderr=subprocess.PIPE, text=True, env={**env, **SECRETS_ENV},
    )  # fmt: skip
    server = ServerProcess(proc)
    stderr = proc.stderr
    assert stderr is not None

    def read() -> None:
        for line in stderr:
            with server.changed:
                server.lines.append(line)
                if m := re.search(r"listening on port (\d+)", line):
                    server.port = int(m.group(1))
                server.changed.notify_all()
        with server.changed:
            server.changed.notify_all()

    reader = threading.Thread(target=read, daemon=True)  # never a full pipe
    reader.start()
    deadline = time.monotonic() + 60
    try:
        with server.changed:
            server.changed.wait_for(lambda: server.port or proc.poll() is not None, deadline - time.monotonic())
        if not server.port:
            raise AssertionError(f"server did not start ({proc.poll()}): {''.join(server.lines)}")
        yield server
    finally:
        proc.terminate()
        code = proc.wait(30)
        reader.join(10)
        stderr.close()
    assert code == 0, "".join(server.lines)
