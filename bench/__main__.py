"""Run one benchmark by NAME, or every benchmark with its defaults when no NAME is given.

A benchmark is a module with ``add_arguments(parser)`` and ``run(args) -> int``, listed in
BENCHMARKS. Modules are imported inside ``main()`` only: client processes are spawned, and a
spawned child re-imports this module, which should cost it nothing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

BENCHMARKS: dict[str, str] = {
    "grpc": "bench.grpc_bridge",
    "http": "bench.http_client",
    "e2e": "bench.e2e",
    "history": "bench.history",
    "watch": "bench.watch",
    "sealing": "bench.sealing",
    "telemetry": "bench.telemetry",
    "pg": "bench.pg_calls",
    "pgstore": "bench.pg_store",
    "sqlstore": "bench.sqlite_store",
    "render": "bench.render",
    "tls": "bench.tls",
    "auth": "bench.auth",
    "fanout": "bench.fanout",
    "render-memory": "bench.render_memory",
    "publish": "bench.publish",
}


class Benchmark(Protocol):
    __doc__: str | None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    subparsers = parser.add_subparsers(dest="benchmark", metavar="NAME")
    parsers: dict[str, argparse.ArgumentParser] = {}
    modules: dict[str, Benchmark] = {}
    for name, module_name in BENCHMARKS.items():
        module = cast(Benchmark, importlib.import_module(module_name))
        summary = (module.__doc__ or name).strip().splitlines()[0]
        sub = subparsers.add_parser(name, help=summary, description=module.__doc__)
        sub.formatter_class = argparse.RawDescriptionHelpFormatter
        module.add_arguments(sub)
        parsers[name], modules[name] = sub, module
    args = parser.parse_args(argv)
    if args.benchmark is not None:
        return modules[args.benchmark].run(args)
    status = 0
    for name, module in modules.items():
        print(f"== {name}", flush=True)
        status = max(status, module.run(parsers[name].parse_args([])))
    return status


if __name__ == "__main__":
    sys.exit(main())
