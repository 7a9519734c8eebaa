"""The plugin tutorial in docs/plugins.md from an empty folder, as an author outside this
repository follows it: its shell steps run in order in a fresh folder and virtual environment,
with the distributions ``make dist`` builds, and its files written where the page says."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugins.md"
_BLOCK = re.compile(r"^```(\w+)(?: (\S+))?\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_HEREDOC_END = "TUTORIAL_FILE_END"


def tutorial_script() -> str:
    """The tutorial section as one bash script: ``sh`` blocks as they are, files as heredocs."""
    text = DOCS.read_text()
    start = text.index("## Tutorial")
    section = text[start : text.index("\n## ", start + 1)]
    lines = ["set -euo pipefail"]
    for language, path, body in _BLOCK.findall(section):
        if language == "sh":
            lines.append(body)
        elif path:
            relative = path.removeprefix("acme-text/")  # the steps run inside acme-text/ by then
            assert _HEREDOC_END not in body
            lines.append(
                f"mkdir -p \"$(dirname '{relative}')\"\ncat > '{relative}' <<'{_HEREDOC_END}'\n{body}{_HEREDOC_END}"
            )
    return "\n".join(lines) + "\n"


@pytest.mark.dist
def test_the_tutorial_from_an_empty_folder_with_the_built_wheels(tmp_path: Path) -> None:
    script = tutorial_script()
    assert 'make -C "$TIDINGS" dist' in script
    assert "tidings_procore-*.whl" in script  # the catalog the tutorial's RFIs trigger needs
    work = tmp_path / "author"
    work.mkdir()
    # Nothing of this repository's environment: a shell as the author has one.
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "TIDINGS", "PIP_"))}
    path_dirs = [d for d in keep.get("PATH", "").split(os.pathsep) if Path(d).resolve() != Path(sys.executable).parent]
    python = shutil.which("python3", path=os.pathsep.join(path_dirs))
    assert python is not None, "no python3 on PATH outside the development venv"
    port, receiver_port = free_port(), free_port()
    env = {
        **keep,
        "PATH": os.pathsep.join(path_dirs),
        "TIDINGS": str(ROOT),
        "PORT": str(port),
        "RECEIVER_PORT": str(receiver_port),
    }
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the server and receiver it leaves in the background go with it
    )
    out: list[str] = []
    arrived = threading.Condition()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with arrived:
                out.append(line.rstrip("\n"))
                arrived.notify_all()

    threading.Thread(target=read, daemon=True).start()
    delivered = re.compile(r"text/plain; charset=utf-8 RFIs 54321 update in project 6778 \((\w{26})\)")
    try:
        with arrived:
            done = arrived.wait_for(lambda: any(delivered.search(line) for line in out) or proc.poll(), 600)
        script_code = proc.poll()
        text = "\n".join(out)
        assert done, text
        assert script_code in (None, 0), text
        assert re.search(r"^acme\s+acme-text 0\.1\.0\s+loaded$", text, re.MULTILINE), text
        assert "acme.text.v1               acme-text 0.1.0  text/plain; charset=utf-8" in out
        [published] = [line for line in out if line.startswith("published ")]
        [event_id] = [m.group(1) for line in out if (m := delivered.search(line))]
        assert published == f"published {event_id} to 1 hook"
        assert re.search(r"\d+ passed", text)  # the contract tests ran
        assert "failed" not in text.lower().replace("0 failed", "")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)

    # Without the catalog, `tidings-server plugins` says what is missing.
    venv = work / "acme-text" / ".venv" / "bin"
    subprocess.run([str(venv / "pip"), "uninstall", "-q", "-y", "tidings-procore"], check=True, timeout=120)
    listed = subprocess.run([str(venv / "tidings-server"), "plugins"], capture_output=True, text=True, timeout=60)
    assert "catalog resources: 0" in listed.stdout
    assert "no resource catalog is installed" in listed.stderr
