"""``tidings-server`` processes for the secrets tests, with the key given as each test says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tidings_server.keys import ENV_VAR

SERVER = Path(sys.executable).parent / "tidings-server"


def env(**extra: str) -> dict[str, str]:
    """The environment without any key of the test run's own, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if k != ENV_VAR}, "PYTHONUNBUFFERED": "1", **extra}


def run(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SERVER), *args], capture_output=True, text=True, timeout=120, env=env(**(extra_env or {}))
    )


@contextmanager
def serving(store: str, *args: str, extra_env: dict[str, str] | None = None) -> Iterator[tuple[int, list[str]]]:
    """A server process on a free port; yields the port and its log lines (read on as it logs)."""
    proc = subprocess.Popen(
        [str(SERVER), "serve", "--listen", "127.0.0.1:0", "--store", store, "--allow-http",
         "--allow-private-destinations", *args],
        stderr=subprocess.PIPE, text=True, env=env(**(extra_env or {})),
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    port = 0
    for line in proc.stderr:
        lines.append(line)
        if m := re.search(r"listening on port (\d+)", line):
            port = int(m.group(1))
            break
    stderr = proc.stderr
    reader = threading.Thread(target=lambda: lines.extend(stderr), daemon=True)  # never a full pipe
    reader.start()
    try:
        if not port:
            raise AssertionError(f"server exited with {proc.wait(10)}: {''.join(lines)}")
        yield port, lines
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        reader.join(10)
        stderr.close()
