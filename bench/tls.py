"""What TLS costs the control plane: unary calls/s and new connections/s of a real server
process, plaintext against TLS against mutual TLS, with the server's CPU µs per call and per
connection (utime + stime from /proc).

The three servers (``tidings-server serve --store memory:``) run side by side for the whole
session; rounds rotate their order so the shared machine's noise falls on all alike, and each
figure is the median of ``--runs`` rounds. Calls come from spawned client processes on one
channel each (bench/loadgen.py), so the handshake is paid once and the figure is the cost of
encryption; connections are opened one after another from this process, each with a health
check, so the figure is the handshake's cost. Certificates are P-256, made by trustme.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.loadgen import ClientPool, Load
from tidings.v1 import hooks_pb2

SERVER = Path(sys.executable).parent / "tidings-server"
READY = "tidings-server listening on port "
METHOD = "/tidings.v1.HookService/ListHooks"
REQUEST = hooks_pb2.ListHooksRequest(parent="companies/8/projects/6778").SerializeToString()
VARIANTS = ("plaintext", "tls", "mutual-tls")


@dataclass(frozen=True)
class Server:
    variant: str
    pid: int
    port: int
    credentials: tuple[bytes, bytes | None, bytes | None] | None  # what a client connects with


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@contextmanager
def _server(variant: str, folder: Path, ca: trustme.CA) -> Iterator[Server]:
    args = ["serve", "--listen", "127.0.0.1:0", "--store", "memory:", "--log-level", "warning"]
    credentials: tuple[bytes, bytes | None, bytes | None] | None = None
    if variant != "plaintext":
        cert = ca.issue_cert("localhost", "127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(folder / f"{variant}.pem"))
        cert.private_key_pem.write_to_path(str(folder / f"{variant}.key"))
        args += ["--tls-cert", str(folder / f"{variant}.pem"), "--tls-key", str(folder / f"{variant}.key")]
        credentials = (ca.cert_pem.bytes(), None, None)
    if variant == "mutual-tls":
        ca.cert_pem.write_to_path(str(folder / "clients-ca.pem"))
        args += ["--client-ca", str(folder / "clients-ca.pem")]
        me = ca.issue_cert("bench-client")
        credentials = (ca.cert_pem.bytes(), me.private_key_pem.bytes(), me.cert_chain_pems[0].bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    proc = subprocess.Popen([str(SERVER), *args], stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith(READY):
                port = int(line[len(READY) :].split()[0])
                break
        else:
            raise RuntimeError(f"the {variant} server did not start (exit {proc.wait()})")
        yield Server(variant, proc.pid, port, credentials)
    finally:
        proc.terminate()
        proc.wait(30)


def _calls(pool: ClientPool, server: Server, args: argparse.Namespace) -> tuple[float, float]:
    """Calls/s on long-lived channels, and the server's CPU µs per completed call."""
    before = _cpu_seconds(server.pid)
    load = Load(server.port, METHOD, REQUEST, args.in_flight, args.warmup, args.duration, server.credentials)
    result = pool.run(load)
    if result.errors:
        raise RuntimeError(f"{server.variant}: {result.errors} calls failed: {result.first_error}")
    return result.rate, (_cpu_seconds(server.pid) - before) / result.completed * 1e6


def _connections(server: Server, count: int) -> tuple[float, float]:
    """New connections/s, each handshaken and carrying one health check, and the server's CPU µs
    per connection."""
    target = f"127.0.0.1:{server.port}"
    before, start = _cpu_seconds(server.pid), time.perf_counter()
    for _ in range(count):
        # A channel per connection; subchannel sharing is off so each one handshakes anew.
        options = [("grpc.use_local_subchannel_pool", 1)]
        if server.credentials is None:
            channel = grpc.insecure_channel(target, options)
        else:
            channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(*server.credentials), options)
        with channel:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    elapsed = time.perf_counter() - start
    return count / elapsed, (_cpu_seconds(server.pid) - before) / count * 1e6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=3, help="rounds; figures are their medians (default 3)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of calls measured per run (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of calls before measuring (default 1)")
    parser.add_argument("--in-flight", type=int, default=16, help="calls kept in flight (default 16)")
    parser.add_argument("--connections", type=int, default=100, help="new connections per run (default 100)")
    parser.add_argument("--client-processes", type=int, default=1, help="load processes (default 1)")


def run(args: argparse.Namespace) -> int:
    figures: dict[str, list[tuple[float, float, float, float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack, ClientPool(args.client_processes) as pool:
        ca = trustme.CA()
        servers = [stack.enter_context(_server(v, Path(tmp), ca)) for v in VARIANTS]
        for round_ in range(args.runs):
            for server in servers[round_ % 3 :] + servers[: round_ % 3]:
                rate, cpu = _calls(pool, server, args)
                connects, connect_cpu = _connections(server, args.connections)
                figures[server.variant].append((rate, cpu, connects, connect_cpu))
    medians = {v: [statistics.median(run[i] for run in rows) for i in range(4)] for v, rows in figures.items()}
    base = medians["plaintext"]
    print(f"medians of {args.runs} rounds; {args.in_flight} calls in flight on one channel, ListHooks (memory: store)")
    print(f"{'':<11} {'calls/s':>9} {'ratio':>6} {'CPU µs/call':>12} {'conns/s':>8} {'ratio':>6} {'CPU µs/conn':>12}")
    for variant, (rate, cpu, connects, connect_cpu) in medians.items():
        print(
            f"{variant:<11} {rate:>9,.0f} {rate / base[0]:>6.2f} {cpu:>12,.0f} {connects:>8,.0f}"
            f" {connects / base[2]:>6.2f} {connect_cpu:>12,.0f}"
        )
    return 0
