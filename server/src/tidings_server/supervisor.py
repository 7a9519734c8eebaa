"""``serve --processes N``: N server processes on one machine sharing one port, kept running.

One Python process uses one core, so a machine's cores are used by several server processes,
each a full node of the cluster (its own node id, leases and heartbeat) on a store they can
share. They all bind the listen port with SO_REUSEPORT and the kernel spreads connections
between them. The supervisor itself touches no store and serves nothing: it holds the port
(bound, never listening, so a child restarting never finds it taken by another program),
restarts a child that dies, and on SIGTERM or SIGINT passes SIGTERM on and waits for every
child to drain within the grace.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

log = logging.getLogger(__name__)

READY = "tidings-server listening on port "
"""The line a server prints on stderr once it serves; the supervisor waits for it from each child."""
RESTART_DELAY = (0.1, 30.0)
"""A child that dies is restarted after the first delay, doubling while it keeps dying young."""
YOUNG = 10.0
"""A child that ran less than this many seconds before dying died young."""


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen on) ``host:port`` with SO_REUSEPORT; port 0 picks a free one. Only
    listening sockets take connections, so this one only keeps the port for the children."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("localhost" if host == "localhost" else host, port))
    except OSError:
        sock.close()
        raise
    return sock


class ChildFailedError(Exception):
    """A child exited before it ever served: its configuration cannot work (it said why)."""


@dataclass(slots=True)
class _Child:
    index: int
    process: trio.Process | None = None
    ready: trio.Event = field(default_factory=trio.Event)
    restarts: int = 0


@dataclass(slots=True)
class Supervisor:
    """Runs ``argv`` (a single-process ``serve`` command line) ``count`` times."""

    argv: Sequence[str]
    count: int
    grace: float
    metrics_listen: str | None = None  # child i serves its metrics on this port + i
    _stopping: bool = False
    _children: list[_Child] = field(default_factory=list)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Until a stop signal: keep ``count`` children running; ``started`` once all serve."""
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            try:
                async with trio.open_nursery() as nursery:
                    self._children = [_Child(i) for i in range(self.count)]
                    for child in self._children:
                        nursery.start_soon(self._keep, child)
                    for child in self._children:
                        await child.ready.wait()
                    task_status.started()
                    async for signum in signals:
                        if signum == signal.SIGHUP:  # each child reads its TLS and key files again
                            self._forward(signal.SIGHUP)
                            continue
                        log.info("stopping children", extra={"signal": signal.Signals(signum).name})
                        break
                    await self._stop()
                    nursery.cancel_scope.cancel()
            finally:
                with trio.CancelScope(shield=True):
                    await self._stop()
        log.info("stopped")

    def _forward(self, signum: int) -> None:
        for child in self._children:
            if child.process is not None and child.process.returncode is None:
                child.process.send_signal(signum)

    async def _stop(self) -> None:
        """SIGTERM every live child, wait the grace (and a little), then kill what is left."""
        self._stopping = True
        live = [c.process for c in self._children if c.process is not None and c.process.returncode is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(self.grace + 5):
            for process in live:
                await process.wait()
        for process in live:
            if process.returncode is None:
                log.warning("child did not stop in time; killing it", extra={"pid": process.pid})
                process.kill()
                await process.wait()

    async def _keep(self, child: _Child) -> None:
        delay = RESTART_DELAY[0]
        while not self._stopping:
            started = trio.current_time()
            argv = list(self.argv)
            if self.metrics_listen is not None:  # each process its own port, the same across restarts
                argv += ["--metrics-listen", child_metrics_listen(self.metrics_listen, child.index)]
            process = await trio.lowlevel.open_process(argv, stderr=subprocess.PIPE)
            child.process = process
            log.info("child started", extra={"child": child.index, "pid": process.pid})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._relay, process, child)
                code = await process.wait()
            if self._stopping:
                return
            if not child.ready.is_set() and child.restarts == 0:
                raise ChildFailedError(f"a server process exited with {code} before serving")
            log.error(
                "child exited; restarting it", extra={"child": child.index, "pid": process.pid, "returncode": code}
            )
            young = trio.current_time() - started < YOUNG
            delay = min(delay * 2, RESTART_DELAY[1]) if young else RESTART_DELAY[0]
            child.restarts += 1
            await trio.sleep(delay)

    async def _relay(self, process: trio.Process, child: _Child) -> None:
        """Pass the child's stderr (its JSON logs) on line by line; its ready line is noted."""
        assert process.stderr is not None
        pending = b""
        async for chunk in process.stderr:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.decode(errors="replace").startswith(READY):
                    child.ready.set()
                    continue
                sys.stderr.buffer.write(line + b"\n")
            sys.stderr.buffer.flush()


def child_metrics_listen(listen: str, index: int) -> str:
    """Where child ``index`` serves metrics: the given port plus its index, so a scrape target per
    process is known in advance; port 0 stays 0 (each picks a free one and logs it)."""
    host, _, port = listen.rpartition(":")
    return listen if port == "0" else f"{host}:{int(port) + index}"


def child_argv(argv: Sequence[str], listen: str) -> list[str]:
    """The command line of one child: these same ``serve`` options (``argv``, after ``serve``),
    one process, on the reserved port."""
    out: list[str] = [sys.executable, "-m", "tidings_server.cli", "serve"]
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "--listen", "--metrics-listen"):
            skip = True
            continue
        if arg.startswith(("--processes=", "--listen=", "--metrics-listen=")):
            continue
        out.append(arg)
    # Given on the command line, these win over a --config file or the environment, which the
    # children read as the supervisor did.
    return [*out, "--listen", listen, "--processes", "1", "--reuse-port"]


def serve_processes(
    argv: Sequence[str], listen: str, count: int, grace: float, *, metrics_listen: str | None = None
) -> int:
    """Supervise ``count`` children of the ``serve`` command ``argv``; returns the exit code."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        held = reserve_port(host, int(port))
    except OSError as exc:
        print(f"tidings-server: --listen: cannot bind {listen}: {exc}", file=sys.stderr)
        return 2
    with held:
        bound = held.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        supervisor = Supervisor(child_argv(argv, f"{shown}:{bound}"), count, grace, metrics_listen)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(supervisor.run)
                print(f"{READY}{bound} ({count} processes, supervisor pid {os.getpid()})", file=sys.stderr, flush=True)

        code = 0
        try:
            trio.run(main)
        except* ChildFailedError:
            code = 2
    return code
