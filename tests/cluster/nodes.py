"""Real ``tidings-server serve`` processes on one PostgreSQL database, and a receiver that
checks what a cluster promises at the wire: per-resource order and per-hook concurrency."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.harness import SECRETS_ENV

BIN = Path(sys.executable).parent / "tidings-server"
# Seconds: a killed node's work is taken over after this. Short, so the tests are, yet with
# room for a heartbeat (every third of it) to be late on a busy machine: a lease that ends
# under a running attempt lets another node send the delivery too.
LEASE = "10"


@dataclass
class Node:
    """One server process; its stderr is drained on a thread (and kept) so it never blocks."""

    proc: subprocess.Popen[str]
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(30)


def start_node(store: str, *args: str) -> Node:
    proc = subprocess.Popen(
        [str(BIN), "serve", "--listen", "127.0.0.1:0", "--store", store, "--allow-http",
         "--allow-private-destinations", "--delivery-lease", LEASE, *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **SECRETS_ENV},
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if m := re.search(r"listening on port (\d+)", line):
            node = Node(proc, int(m.group(1)), lines)
            threading.Thread(target=_drain, args=(proc, lines), daemon=True).start()
            return node
    raise AssertionError(f"server exited with {proc.wait(10)} before listening:\n{''.join(lines)}")


def _drain(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)


@contextmanager
def nodes(store: str, count: int, *args: str) -> Iterator[list[Node]]:
    started: list[Node] = []
    try:
        for _ in range(count):
            started.append(start_node(store, *args))
        yield started
    finally:
        for node in started:
            if node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait(10)


@dataclass(frozen=True)
class Arrival:
    hook: str  # the request path
    event_id: str
    serial: int
    resource: tuple[str, int]
    start: float  # time.monotonic() when the request was read
    sender: int | None  # pid of the process whose connection carried it; None: one that had exited
    # The sender had closed the connection before the request was read: it had given up (a
    # timed-out attempt) or was killed, and what the receiver does with it is no delivery.
    abandoned: bool


@dataclass
class Receiver:
    """Answers 200 after ``delay`` seconds; counts requests in flight per hook and per
    (hook, resource), keeping the highest counts seen, and every arrival in order. A request
    read only after its sender gave up is kept, marked abandoned, and counted nowhere: a receiver
    that falls behind reads such stale requests long after tidings moved on."""

    delay: float
    ordered: frozenset[str] = frozenset()  # paths of per-resource hooks, whose resources are counted
    port: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    most_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    resource_in_flight: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    most_resource_in_flight: int = 0
    pids: tuple[int, ...] = ()  # the processes whose requests are told apart (see sender_of)

    def url(self, hook: str) -> str:
        return f"http://127.0.0.1:{self.port}/{hook}"

    def delivered(self) -> list[Arrival]:
        """The arrivals read while their sender still waited for the answer."""
        with self.lock:
            return [a for a in self.arrivals if not a.abandoned]

    def distinct(self) -> set[tuple[str, str]]:
        return {(a.hook, a.event_id) for a in self.delivered()}

    def wait_for(self, expected: set[tuple[str, str]], timeout: float) -> set[tuple[str, str]]:
        """Wait until every (hook, event id) of ``expected`` was delivered; return those that were not."""
        with self.lock:
            self.lock.wait_for(lambda: expected <= self._distinct(), timeout)
            return expected - self._distinct()

    def wait_until(self, count: int, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: len(self.arrivals) >= count, timeout)

    def _distinct(self) -> set[tuple[str, str]]:
        return {(a.hook, a.event_id) for a in self.arrivals if not a.abandoned}


def sender_of(peer_port: int, port: int, pids: tuple[int, ...]) -> int | None:
    """The pid among ``pids`` holding the client end of the loopback connection from
    ``peer_port`` to ``port``, found through the socket's inode in /proc; None when no process
    holds it any more."""
    inode = "0"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in lines:
                cols = line.split()
                if len(cols) > 9 and cols[1].endswith(f":{peer_port:04X}") and cols[2].endswith(f":{port:04X}"):
                    inode = cols[9]
    if inode == "0":
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(FileNotFoundError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
    return None


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other end has closed the connection (tidings never half-closes while it
    waits for an answer, so this means it gave up on the request or died)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


@contextmanager
def running_receiver(delay: float, ordered: frozenset[str] = frozenset()) -> Iterator[Receiver]:
    receiver = Receiver(delay, ordered)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        sender: int | None = None

        def setup(self) -> None:
            super().setup()
            self.sender = sender_of(self.client_address[1], receiver.port, receiver.pids) if receiver.pids else None

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            hook = self.path.strip("/")
            resource = (str(body["resource_name"]), int(body["resource_id"]))
            key = (hook, *resource) if hook in receiver.ordered else ("", "", 0)
            abandoned = closed_by_peer(self.connection)
            arrival = Arrival(
                hook, str(body["ulid"]), int(body["id"]), resource, time.monotonic(), self.sender, abandoned
            )
            with receiver.lock:
                receiver.arrivals.append(arrival)
                if abandoned:
                    self.close_connection = True
                    return
                receiver.in_flight[hook] += 1
                receiver.most_in_flight[hook] = max(receiver.most_in_flight[hook], receiver.in_flight[hook])
                if hook in receiver.ordered:
                    receiver.resource_in_flight[key] += 1
                    receiver.most_resource_in_flight = max(
                        receiver.most_resource_in_flight, receiver.resource_in_flight[key]
                    )
                receiver.lock.notify_all()
            time.sleep(receiver.delay)
            # The request stops counting before its answer goes out: once the answer is sent the
            # sender may rightly start the next one, possibly before this thread runs again.
            with receiver.lock:
                receiver.in_flight[hook] -= 1
                if hook in receiver.ordered:
                    receiver.resource_in_flight[key] -= 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
