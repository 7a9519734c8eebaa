"""A scripted HTTP/1.1 webhook receiver for tests, and a port where nothing listens.

The receiver runs in the test's own trio run, on 127.0.0.1, so it follows the virtual clock:
a ``delay`` or an idle timeout costs no real time. Each request is answered by the next action
of the script, or by the default once the script is used up; every request is recorded with
the trio time at which it was complete.

    receiver = await ScriptedReceiver(Reply(500), HANG, default=Reply(200)).start(nursery)

(``nursery.start(receiver.run)`` does the same, but returns Any.)
"""

from __future__ import annotations

import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import h11
import trio

FILLER_CHUNK = b"x" * 65536


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer after ``delay`` seconds of trio time. ``filler`` appends that many bytes of ``x``
    to ``body``, written a piece at a time, for bodies too large to build (say, 10 MB). ``stall``
    sends the head and ``body``, then hangs instead of sending the filler."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = 0.0
    filler: int = 0
    stall: bool = False


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer; the connection stays open until the receiver is cancelled."""


@dataclass(frozen=True, slots=True)
class Close:
    """Drop the connection without answering."""


HANG = Hang()
CLOSE = Close()
Action = Reply | Hang | Close


@dataclass(frozen=True, slots=True)
class Received:
    """One request as it arrived; ``connection`` numbers the receiver's connections from 1."""

    time: float
    connection: int
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


class ScriptedReceiver:
    """Answers with ``script`` in order, then with ``default`` (an action, or a function of the
    request choosing one). ``idle_timeout`` closes a keep-alive connection that waits that long
    for its next request, as servers do; ``ssl_context`` makes it an https receiver."""

    def __init__(
        self,
        *script: Action,
        default: Action | Callable[[Received], Action] = Reply(),
        idle_timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.script: deque[Action] = deque(script)
        self.default = default
        self.idle_timeout = idle_timeout
        self.ssl_context = ssl_context
        self.requests: list[Received] = []
        self.connections = 0
        self.open_connections = 0
        self.peak_connections = 0  # the most connections open at once
        self.port = 0

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def start(self, nursery: trio.Nursery) -> ScriptedReceiver:
        """``await nursery.start(self.run)``, with the receiver's type kept."""
        await nursery.start(self.run)
        return self

    async def run(self, *, task_status: trio.TaskStatus[ScriptedReceiver] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, self._serve, 0, host="127.0.0.1"))
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started(self)

    def _choose(self, request: Received) -> Action:
        if self.script:
            return self.script.popleft()
        return self.default(request) if callable(self.default) else self.default

    async def _serve(self, tcp: trio.SocketStream) -> None:
        self.connections += 1
        self.open_connections += 1
        self.peak_connections = max(self.peak_connections, self.open_connections)
        number = self.connections
        stream: trio.abc.Stream = tcp
        if self.ssl_context is not None:
            stream = trio.SSLStream(tcp, self.ssl_context, server_side=True)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = None
                with trio.move_on_after(self.idle_timeout if self.idle_timeout is not None else float("inf")):
                    request = await self._receive(stream, conn, number)
                if request is None:
                    return
                self.requests.append(request)
                action = self._choose(request)
                if isinstance(action, Close):
                    return
                if isinstance(action, Hang):
                    await trio.sleep_forever()
                assert isinstance(action, Reply)
                await trio.sleep(action.delay)
                await self._reply(stream, conn, action)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return  # the client went away, which several tests make it do
        finally:
            self.open_connections -= 1
            tcp.socket.close()

    async def _receive(self, stream: trio.abc.Stream, conn: h11.Connection, number: int) -> Received | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return Received(
                    time=trio.current_time(),
                    connection=number,
                    method=head.method.decode(),
                    target=head.target.decode(),
                    headers=tuple((name.decode(), value.decode()) for name, value in head.headers.raw_items()),
                    body=bytes(body),
                )
            else:
                return None  # ConnectionClosed between requests

    async def _reply(self, stream: trio.abc.Stream, conn: h11.Connection, reply: Reply) -> None:
        headers = list(reply.headers)
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers.append(("Content-Length", str(len(reply.body) + reply.filler)))
        out = conn.send(h11.Response(status_code=reply.status, headers=headers)) or b""
        if reply.body:
            out += conn.send(h11.Data(data=reply.body)) or b""
        await stream.send_all(out)
        if reply.stall:
            await trio.sleep_forever()
        left = reply.filler
        while left > 0:
            piece = FILLER_CHUNK[: min(left, len(FILLER_CHUNK))]
            await stream.send_all(conn.send(h11.Data(data=piece)) or b"")
            left -= len(piece)
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connecting is refused: bound, so nothing else can take it, but not
    listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
