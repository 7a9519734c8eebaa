"""A threaded HTTP receiver for tests whose server runs in another thread or process.

The scripted trio receiver (tests/receivers.py) is for virtual-time tests inside one trio run;
this one serves blocking tests: it answers every POST after ``delay`` seconds, with 200 or
what ``answers`` scripts for the request's path, and records the delivery id header and the
body of each request (``received``), and each request whole, headers as they arrived
(``requests``), for tests that verify signatures or formats. ``HeldReceiver`` holds every
request until released, for tests that look at a server while attempts are in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Request:
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


@dataclass
class Sink:
    port: int = 0
    delay: float = 0.0
    received: list[tuple[str, bytes]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    # path -> statuses to answer in turn; the last one repeats. Paths not listed get 200.
    answers: dict[str, list[int]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    open_connections: int = 0
    peak_connections: int = 0  # the most connections open at once

    def answer(self, path: str) -> int:
        """The status for the next request to ``path`` (called with the sink locked)."""
        n = self.hits.get(path, 0)
        self.hits[path] = n + 1
        script = self.answers.get(path, [200])
        return script[min(n, len(script) - 1)]

    def url(self, path: str = "/in") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ids(self) -> set[str]:
        with self.arrived:
            return self._ids()

    def wait_for(self, ids: set[str], timeout: float) -> set[str]:
        """Block until every id in ``ids`` arrived or ``timeout`` passed; return the missing ones."""
        self.wait_until(lambda: ids <= self._ids(), timeout)
        with self.arrived:
            return ids - self._ids()

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Block until ``ready()`` (called with the sink locked) holds or ``timeout`` passed."""
        with self.arrived:
            return self.arrived.wait_for(ready, timeout)

    def _ids(self) -> set[str]:
        return {delivery_id for delivery_id, _ in self.received}


@contextmanager
def running_sink(delay: float = 0.0) -> Iterator[Sink]:
    sink = Sink(delay=delay)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle(self) -> None:
            with sink.arrived:
                sink.open_connections += 1
                sink.peak_connections = max(sink.peak_connections, sink.open_connections)
            try:
                super().handle()
            finally:
                with sink.arrived:
                    sink.open_connections -= 1

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if sink.delay:
                time.sleep(sink.delay)
            with sink.arrived:
                sink.received.append((self.headers.get("Tidings-Delivery-Id", ""), body))
                sink.requests.append(Request(tuple(self.headers.items()), body))
                status = sink.answer(self.path)
                sink.arrived.notify_all()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="http-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class HeldReceiver:
    """An HTTP receiver that holds every request until released, counting those it holds."""

    def __init__(self) -> None:
        self.waiting = 0
        self.answered = 0
        self._lock = threading.Lock()
        self._go = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.waiting += 1
                receiver._go.wait(30)
                with receiver._lock:
                    receiver.waiting -= 1
                    receiver.answered += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def release(self) -> None:
        self._go.set()

    def __enter__(self) -> HeldReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
