"""Regenerate the Python code for proto/ into the client distribution, or check it is fresh.

python .ci/gen_proto.py          # write clients/python/src/tidings/v1/*
python .ci/gen_proto.py --check  # exit 1 if regenerating would change anything
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
OUT = ROOT / "clients" / "python" / "src"
PACKAGE = Path("tidings") / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate(into: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO)) for p in (PROTO / PACKAGE).glob("*.proto"))
    bindir = Path(sys.executable).parent
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}",
        f"--python_out={into}", f"--grpc_python_out={into}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={into}", f"--mypy_grpc_out={into}", *protos,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=PROTO)
    for pkg in (into / "tidings", into / PACKAGE):
        (pkg / "__init__.py").write_text('"""Generated from proto/ by `make proto`; do not edit."""\n')


def generated_files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in (root / PACKAGE).iterdir() if p.name.endswith(GENERATED_SUFFIXES)} | {
        Path("tidings/__init__.py"),
        PACKAGE / "__init__.py",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        want = generated_files(fresh)
        have = generated_files(OUT) if (OUT / PACKAGE).exists() else set()
        if args.check:
            stale = sorted(str(p) for p in want ^ have)
            stale += sorted(str(p) for p in want & have if not filecmp.cmp(fresh / p, OUT / p, shallow=False))
            if stale:
                print("generated code is stale; run `make proto` and commit:", *stale, sep="\n  ")
                return 1
            print("generated code is fresh")
            return 0
        for p in have - want:
            (OUT / p).unlink()
        for p in sorted(want):
            (OUT / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh / p, OUT / p)
        print(f"generated {len(want)} files under {OUT / PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
