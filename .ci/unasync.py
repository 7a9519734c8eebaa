"""Generate the blocking client (client.py) from the asyncio one (aio.py), or check it is fresh.

python .ci/unasync.py          # write clients/python/src/tidings_client/client.py
python .ci/unasync.py --check  # exit 1 if regenerating would change it

aio.py is the one source: every RPC is written once, awaited, and the blocking twin is this
file's substitutions of it, then ruff-fixed and formatted. The substitutions are whole words and a few
exact phrases, so a construct they do not cover shows up as a diff in review, not as a silent
mistranslation.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clients" / "python" / "src" / "tidings_client"
SOURCE = PACKAGE / "aio.py"
TARGET = PACKAGE / "client.py"

HEADER = "# Generated from aio.py by .ci/unasync.py (`make unasync`): edit aio.py, not this file.\n"

# Phrases first (they mention words the word table would change), then words.
PHRASES: list[tuple[str, str]] = [
    (r'^"""The asyncio client \(grpc\.aio\): ', '"""The blocking client: '),
    (r"\n\n    Create it inside a running event loop: grpc\.aio channels belong to the loop they start on\.", ""),
    (r"async with ", "with "),
    (r"async for ", "for "),
    (r"async def ", "def "),
    (r"await ", ""),
    (r"\(``aclose\(\)``\) ", ""),
    (r"grpc\.aio\.", "grpc."),
    (r"asyncio\.sleep\(", "time.sleep("),
    (r"^import asyncio\n", ""),
    (r"Awaitable\[(\w+)\]", r"\1"),
]
WORDS: dict[str, str] = {
    "AsyncClient": "Client",
    "AsyncIterator": "Iterator",
    "AsyncGenerator": "Generator",
    "Awaitable": "",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "asyncio": "blocking",
}


def unasync(text: str) -> str:
    for pattern, replacement in PHRASES:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    text = re.sub(r"\b(" + "|".join(WORDS) + r")\b", lambda m: WORDS[m.group(1)], text)
    # An import list that lost a name ("Awaitable") keeps no empty slot behind.
    text = re.sub(r", ,", ",", text)
    text = re.sub(r"import , ", "import ", text)
    return HEADER + text


def formatted(text: str) -> str:
    ruff = Path(sys.executable).parent / "ruff"
    # Sorted imports, and `yield from` where an async loop of yields became a plain one.
    fix = [str(ruff), "check", "--select", "I,UP028", "--fix", "--unsafe-fixes", "--quiet"]
    fix += ["--stdin-filename", str(TARGET), "-"]
    text = subprocess.run(fix, input=text, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    fmt = [str(ruff), "format", "--quiet", "--stdin-filename", str(TARGET), "-"]
    return subprocess.run(fmt, input=text, capture_output=True, text=True, check=True, cwd=ROOT).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the committed client.py is stale")
    args = parser.parse_args()
    fresh = formatted(unasync(SOURCE.read_text()))
    if args.check:
        if TARGET.read_text() != fresh:
            print(f"{TARGET.relative_to(ROOT)} is stale; run `make unasync` and commit")
            return 1
        print(f"{TARGET.relative_to(ROOT)} is fresh")
        return 0
    TARGET.write_text(fresh)
    print(f"generated {TARGET.relative_to(ROOT)} from {SOURCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
