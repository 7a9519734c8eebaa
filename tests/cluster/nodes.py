"""Real ``tidings-server serve`` processes on one PostgreSQL database, and a receiver that
checks what a cluster promises at the wire: per-resource order and per-hook concurrency."""

from __future__ import annotations

import json
import os
import re
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


@dataclass
class Receiver:
    """Answers 200 after ``delay`` seconds; counts requests in flight per hook and per
    (hook, resource), keeping the highest counts seen, and every arrival in order."""

    delay: float
    ordered: frozenset[str] = frozenset()  # paths of per-resource hooks, whose resources are counted
    port: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    most_in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    resource_in_flight: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    most_resource_in_flight: int = 0

    def url(self, hook: str) -> str:
        return f"http://127.0.0.1:{self.port}/{hook}"

    def distinct(self) -> set[tuple[str, str]]:
        with self.lock:
            return {(a.hook, a.event_id) for a in self.arrivals}

    def wait_for(self, expected: set[tuple[str, str]], timeout: float) -> set[tuple[str, str]]:
        """Wait until every (hook, event id) of ``expected`` arrived; return those that did not."""
        with self.lock:
            self.lock.wait_for(lambda: expected <= {(a.hook, a.event_id) for a in self.arrivals}, timeout)
            return expected - {(a.hook, a.event_id) for a in self.arrivals}

    def wait_until(self, count: int, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: len(self.arrivals) >= count, timeout)


@contextmanager
def running_receiver(delay: float, ordered: frozenset[str] = frozenset()) -> Iterator[Receiver]:
    receiver = Receiver(delay, ordered)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            hook = self.path.strip("/")
            resource = (str(body["resource_name"]), int(body["resource_id"]))
            key = (hook, *resource) if hook in receiver.ordered else ("", "", 0)
            arrival = Arrival(hook, str(body["ulid"]), int(body["id"]), resource, time.monotonic())
            with receiver.lock:
                receiver.arrivals.append(arrival)
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
