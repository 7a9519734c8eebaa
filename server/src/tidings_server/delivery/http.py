"""The HTTP client of the delivery engine: HTTP/1.1 over trio streams, written and parsed here.

Why a client of our own: under trio, one pooled ``httpx.AsyncClient`` managed ~900
deliveries/s where h11 over trio streams managed ~11k/s (DESIGN §7); the cost is httpx's
default connection pool, not trio. Then h11's general state machine and httpx's request and
response objects were most of what was left of a delivery's HTTP cost (issue #12), so the
delivery path now writes its request as bytes (a head cached per destination) and parses only
what it reads of the response: status, headers, and the body by its framing, by h11's rules.

``H11Transport`` keeps a plain keep-alive pool per origin and serves httpx too (any
``httpx.AsyncClient`` can use it: probes, tests, tools). It enforces the destination policy at
connect time, on the addresses it actually connects to, so a name that resolved to a public
address when the hook was created cannot be pointed at an internal one later.

``Sender`` is what the engine calls: one POST, never a redirect, bounded time, a bounded body,
and every failure turned into an ``Outcome`` instead of an exception. It writes to the
transport directly rather than through ``httpx.AsyncClient``, whose per-request work (default
headers, cookies, redirect and auth handling) would add headers we must not send.
"""

from __future__ import annotations

import errno
import math
import re
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

import httpx
import trio

from tidings_server.delivery.policy import Failure, Result, parse_retry_after
from tidings_server.domain.destinations import (
    DestinationPolicy,
    Resolver,
    allowed,
    forbidden_address,
    forbidden_name,
    is_ip,
)

__all__ = [
    "ON_CONNECTED",
    "DestinationRefused",
    "H11Transport",
    "Outcome",
    "Sender",
    "Timing",
]

RECEIVE_SIZE = 65536
KEEPALIVE_EXPIRY = 4.0
"""Idle connections older than this are closed rather than reused. Servers commonly drop idle
connections after 5 s (Node's default); reusing one just as the server closes it costs a retry."""
HAPPY_EYEBALLS_DELAY = 0.25
"""When a name has several addresses, the next one is tried after this long (RFC 8305), so one
unreachable address does not use up the whole connect timeout."""
ON_CONNECTED = "tidings.on_connected"
"""Request extension: a ``Callable[[], None]`` called once the request has a connection (new or
reused), before anything is sent. ``Sender`` uses it to start the after-connect timeout."""

URL_CACHE_SIZE = 4096
"""Parsed destination URLs kept by a Sender: parsing is about a tenth of a delivery's CPU time,
and deliveries go to the same URLs again and again."""

RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "user-agent"})
"""Headers the sender writes itself: framing and connection management belong to the transport."""

Origin = tuple[str, str, int]
"""(scheme, host, port): connections are pooled per origin."""


class DestinationRefused(httpx.ConnectError):
    """The destination policy forbids this URL or the address it resolves to; nothing was sent."""


# -- connections and the pool ----------------------------------------------------------------


class _Connection:
    """One HTTP/1.1 connection: a trio stream, the bytes received and not yet parsed, and where
    the current response's body stands.

    Requests go out as bytes the caller built (``_request_head``); a response is parsed here,
    only as far as delivery needs: the status, the headers, and the body by its framing
    (Content-Length, chunked, or until the server closes), following h11's rules for what is
    valid."""

    __slots__ = (
        "buffer",
        "chunk",
        "idle_since",
        "keep_alive",
        "left",
        "name",
        "origin",
        "plain",
        "received",
        "socket",
        "stream",
    )

    def __init__(self, origin: Origin, name: str, stream: trio.abc.Stream, socket: trio.socket.SocketType) -> None:
        self.origin = origin
        self.name = name  # host:port, for error messages
        self.stream = stream
        self.socket = socket
        # The socket itself when nothing (TLS) sits between it and the stream.
        self.plain = socket if isinstance(stream, trio.SocketStream) else None
        self.buffer = bytearray()
        self.received = False  # any byte of the current response has arrived
        self.idle_since = 0.0
        self.keep_alive = False
        self.left = _BODY_DONE  # body bytes still to come: a count, or _CHUNKED, _UNTIL_CLOSE, _BODY_DONE
        self.chunk = 0  # bytes of the current chunk still to come (chunked bodies)

    def is_stale(self) -> bool:
        """An idle connection with something to read was closed by the server (or is out of step)."""
        return self.socket.fileno() == -1 or self.socket.is_readable()

    def finish_cycle(self) -> bool:
        """After a complete exchange: True if the connection may carry the next request."""
        return self.keep_alive and self.left == _BODY_DONE and not self.buffer

    def close(self) -> None:
        """Close at once. Synchronous, so cleanup cannot be interrupted by a cancellation; a TLS
        close_notify is not worth a wait for a connection we are abandoning."""
        self.socket.close()

    async def send_all(self, data: bytes, limit: float | None) -> None:
        self.received = False
        self.left = _BODY_DONE
        try:
            if limit is None:
                await self._write(data)
            else:
                with trio.fail_after(limit):
                    await self._write(data)
        except trio.TooSlowError:
            raise httpx.WriteTimeout(f"{self.name} took the request for {_seconds(limit)} s") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise httpx.WriteError(f"the connection to {self.name} broke while sending: {_reason(exc)}") from exc

    async def _write(self, data: bytes) -> None:
        """Plain TCP is written on the socket itself: ``SocketStream`` adds a conflict detector
        and an error-translating context manager per call, a few percent of a delivery's CPU."""
        if self.plain is None:
            await self.stream.send_all(data)
            return
        with memoryview(data) as view:
            sent = 0
            while sent < len(view):
                sent += await self.plain.send(view[sent:])

    async def read_head(self, limit: float | None) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """The status, reason phrase and headers of the response (informational ones skipped);
        the body is then read with ``read_body``. ``limit`` bounds each read."""
        while True:
            lines = await self._head_lines(limit)
            status_line = _STATUS_LINE.fullmatch(lines[0])
            if status_line is None:
                raise self._broken("the status line is not HTTP/1.x")
            version, code, reason = status_line.groups()
            status = int(code)
            headers: list[tuple[bytes, bytes]] = []
            for line in lines[1:]:
                if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding, as h11 reads it
                    name, value = headers[-1]
                    headers[-1] = (name, (value + b" " + line.strip(b" \t")).strip(b" \t"))
                    continue
                field = _HEADER_FIELD.fullmatch(line)
                if field is None:
                    raise self._broken("a response header is not valid")
                headers.append((field[1], field[2]))
            if status >= 200:
                break
            if status == 101:
                raise self._broken("101 Switching Protocols was not asked for")
            # 1xx: informational, the response proper follows.
        self._frame(status, version, headers)
        return status, reason or b"", headers

    async def read_body(self, limit: float | None) -> bytes | None:
        """The next piece of the body, or None at its end."""
        left = self.left
        if left == _BODY_DONE:
            return None
        if left == _CHUNKED:
            return await self._read_chunked(limit)
        buffer = self.buffer
        if not buffer:
            data = await self._receive(limit)
            if not data:
                if left == _UNTIL_CLOSE:
                    self.left = _BODY_DONE
                    return None
                raise httpx.RemoteProtocolError(
                    f"{self.name} closed the connection mid-response: {left} bytes of the body never arrived"
                )
            buffer += data
        if left == _UNTIL_CLOSE:
            piece = bytes(buffer)
            buffer.clear()
            return piece
        piece = bytes(buffer[:left])
        del buffer[:left]
        self.left = left - len(piece) or _BODY_DONE
        return piece

    async def _head_lines(self, limit: float | None) -> list[bytes]:
        buffer = self.buffer
        searched = 0
        while (end := _BLANK_LINE.search(buffer, searched)) is None:
            if len(buffer) > MAX_HEAD:
                raise self._broken(f"the response head is longer than {MAX_HEAD} bytes")
            searched = max(0, len(buffer) - 3)
            data = await self._receive(limit)
            if not data:
                if not self.received:
                    raise httpx.RemoteProtocolError(f"{self.name} closed the connection without answering")
                raise httpx.RemoteProtocolError(f"{self.name} closed the connection mid-response: in its head")
            self.received = True
            buffer += data
        head = bytes(buffer[: end.start()])
        del buffer[: end.end()]
        return [line.rstrip(b"\r") for line in head.split(b"\n")]

    def _frame(self, status: int, version: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """Where the body ends and whether the connection stays open (RFC 9112 §6, as h11 reads it)."""
        lengths: set[bytes] = set()
        chunked = False
        keep_alive = version == b"1.1"
        for name, value in headers:
            name = name.lower()
            if name == b"content-length":
                lengths.update(length.strip() for length in value.split(b","))
            elif name == b"transfer-encoding":
                if chunked or value.lower() != b"chunked":
                    raise self._broken("only one Transfer-Encoding: chunked is supported")
                chunked = True
            elif name == b"connection" and b"close" in (token.strip() for token in value.lower().split(b",")):
                keep_alive = False
        self.keep_alive = keep_alive
        self.chunk = 0
        if status in (204, 304):
            self.left = _BODY_DONE
        elif chunked:
            self.left = _CHUNKED
        elif lengths:
            (length,) = lengths if len(lengths) == 1 else (b"",)
            if not _CONTENT_LENGTH.fullmatch(length):
                raise self._broken("the Content-Length is not valid")
            self.left = int(length) or _BODY_DONE
        else:
            self.left = _UNTIL_CLOSE
            self.keep_alive = False

    async def _read_chunked(self, limit: float | None) -> bytes | None:
        buffer = self.buffer
        while True:
            if self.chunk > 0:
                if not buffer:
                    await self._more(limit, "in a chunk")
                piece = bytes(buffer[: self.chunk])
                del buffer[: self.chunk]
                self.chunk -= len(piece)
                if not self.chunk:
                    self.chunk = -1  # the chunk's CRLF comes next
                return piece
            if self.chunk < 0:
                while len(buffer) < 2:
                    await self._more(limit, "after a chunk")
                if buffer[:2] != b"\r\n":
                    raise self._broken("a chunk does not end with CRLF")
                del buffer[:2]
                self.chunk = 0
            while (end := buffer.find(b"\r\n")) < 0:
                if len(buffer) > MAX_HEAD:
                    raise self._broken("a chunk header is too long")
                await self._more(limit, "before a chunk")
            header = _CHUNK_HEADER.fullmatch(buffer, 0, end)
            if header is None:
                raise self._broken("a chunk header is not valid")
            self.chunk = int(header[1], 16)  # read before the buffer moves under the match
            del buffer[: end + 2]
            if not self.chunk:  # the last chunk: then trailers (ignored) up to a blank line
                while (trailers := _TRAILERS_END.search(buffer)) is None:
                    if len(buffer) > MAX_HEAD:
                        raise self._broken("the trailers are too long")
                    await self._more(limit, "in its trailers")
                del buffer[: trailers.end()]
                self.left = _BODY_DONE
                return None

    async def _more(self, limit: float | None, where: str) -> None:
        data = await self._receive(limit)
        if not data:
            raise httpx.RemoteProtocolError(f"{self.name} closed the connection mid-response: {where}")
        self.buffer += data

    def _broken(self, what: str) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError(f"{self.name} broke the HTTP/1.1 protocol: {what}")

    async def _receive(self, limit: float | None) -> bytes | bytearray:
        try:
            if limit is None:
                return await self._read()
            with trio.fail_after(limit):
                return await self._read()
        except trio.TooSlowError:
            raise httpx.ReadTimeout(f"{self.name} sent nothing for {_seconds(limit)} s") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise httpx.ReadError(f"the connection to {self.name} broke: {_reason(exc)}") from exc

    async def _read(self) -> bytes | bytearray:
        if self.plain is None:
            return await self.stream.receive_some(RECEIVE_SIZE)
        return await self.plain.recv(RECEIVE_SIZE)


_BODY_DONE = 0
_CHUNKED = -1
_UNTIL_CLOSE = -2
MAX_HEAD = 16384
"""The longest response head (or chunk header, or trailer block) read, as h11 allows."""

# The grammar h11 checks (its _abnf module), for the parts delivery reads and writes.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_VCHAR = rb"[^\x00\s]"
_FIELD_VALUE = rb"(?:" + _FIELD_VCHAR + rb"+(?:[ \t]+" + _FIELD_VCHAR + rb"+)*)?"
_STATUS_LINE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|" + _FIELD_VCHAR + rb")*))?")
_HEADER_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _FIELD_VALUE + rb")[ \t]*")
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,20}")
_CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_TRAILERS_END = re.compile(rb"(?:^|\n)\r?\n")
# Request headers as str, checked all at once: names joined by "\n" (never in a token), values
# likewise (never in a value), so one match per list checks every item exactly.
_NAMES = re.compile(r"(?:[-!#$%&'*+.^_`|~0-9a-zA-Z]+\n)*", re.ASCII)
_VALUES = re.compile(r"(?:(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?\n)*", re.ASCII)
_TARGET = re.compile(rb"[\x21-\x7e]+")


class _Pool:
    """Idle keep-alive connections, at most ``per_origin`` per origin and ``total`` in all.

    Newest first per origin (the likeliest to be alive); expired and surplus ones are closed
    oldest first. Trio runs one task at a time, so no lock is needed: nothing here awaits.
    """

    def __init__(self, per_origin: int, total: int) -> None:
        self._per_origin = per_origin
        self._total = total
        self._by_origin: dict[Origin, list[_Connection]] = {}
        self._oldest_first: dict[_Connection, None] = {}

    def __len__(self) -> int:
        return len(self._oldest_first)

    def take(self, origin: Origin) -> _Connection | None:
        self._expire(trio.current_time())
        idle = self._by_origin.get(origin)
        while idle:
            conn = idle.pop()
            del self._oldest_first[conn]
            if not idle:
                del self._by_origin[origin]
            if not conn.is_stale():
                return conn
            conn.close()
        return None

    def put(self, conn: _Connection) -> None:
        if self._per_origin == 0 or self._total == 0:
            conn.close()
            return
        idle = self._by_origin.setdefault(conn.origin, [])
        if len(idle) >= self._per_origin:
            self._drop(idle[0])
            idle = self._by_origin.setdefault(conn.origin, [])
        conn.idle_since = trio.current_time()
        idle.append(conn)
        self._oldest_first[conn] = None
        while len(self._oldest_first) > self._total:
            self._drop(next(iter(self._oldest_first)))

    def close_all(self) -> None:
        for conn in list(self._oldest_first):
            self._drop(conn)

    def _expire(self, now: float) -> None:
        while self._oldest_first:
            oldest = next(iter(self._oldest_first))
            if now - oldest.idle_since < KEEPALIVE_EXPIRY:
                return
            self._drop(oldest)

    def _drop(self, conn: _Connection) -> None:
        del self._oldest_first[conn]
        idle = self._by_origin[conn.origin]
        idle.remove(conn)
        if not idle:
            del self._by_origin[conn.origin]
        conn.close()


class _ResponseStream(httpx.AsyncByteStream):
    """A response body read from its connection; the connection goes back to the pool only when
    the body was read to its end and the server keeps the connection open."""

    def __init__(self, transport: H11Transport, conn: _Connection, read_limit: float | None) -> None:
        self._transport = transport
        self._conn: _Connection | None = conn
        self._read_limit = read_limit

    async def receive(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        conn = self._conn
        if conn is None:
            return None
        try:
            piece = await conn.read_body(self._read_limit)
        except BaseException:
            self._conn = None
            conn.close()
            raise
        if piece is None:
            self._conn = None
            self._transport.release(conn)
        return piece

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self.receive()) is not None:
            yield chunk

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- the transport -----------------------------------------------------------------------------


class H11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over trio streams with a keep-alive pool per origin and the destination policy.

    Honours httpx's ``timeout`` request extension (connect; read and write per operation) and
    ``ON_CONNECTED``. The number of connections in use is not limited here: how many requests run
    at once is the delivery engine's decision. A request that fails on a reused connection before
    any byte of the response arrived is sent again once on a new connection, since the server may
    have closed the idle connection as the request went out; receivers de-duplicate by event id,
    so the rare duplicate that this can cause is within the at-least-once contract.
    """

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        pool_idle_per_origin: int = 16,
        pool_idle_total: int = 256,
        resolve: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if pool_idle_per_origin < 0 or pool_idle_total < 0:
            raise ValueError("pool sizes must not be negative")
        self._policy = policy
        self._pool = _Pool(pool_idle_per_origin, pool_idle_total)
        self._resolve = resolve or _system_resolve
        self._ssl_context = ssl_context
        self._closed = False

    @property
    def idle_connections(self) -> int:
        return len(self._pool)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        origin = self.origin(request.url)
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        on_connected: Callable[[], None] | None = request.extensions.get(ON_CONNECTED)
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        raw = request.headers.raw
        chunked = any(name.lower() == b"transfer-encoding" for name, _ in raw)
        if body and not chunked and not any(name.lower() == b"content-length" for name, _ in raw):
            raise httpx.LocalProtocolError("the request has a body but neither Content-Length nor Transfer-Encoding")
        head = _request_head(request.method.encode("ascii"), request.url.raw_path, raw)
        if chunked:  # the whole body was read: one chunk, then the last one
            body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
        conn, status, reason, headers = await self.exchange(
            origin, head + body, on_connected, timeouts.get("connect"), timeouts.get("write"), timeouts.get("read")
        )
        return httpx.Response(
            status,
            headers=headers,
            stream=_ResponseStream(self, conn, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def exchange(
        self,
        origin: Origin,
        request: bytes,
        on_connected: Callable[[], None] | None,
        connect: float | None = None,
        write: float | None = None,
        read: float | None = None,
    ) -> tuple[_Connection, int, bytes, list[tuple[bytes, bytes]]]:
        """Send ``request`` (its head and body, as bytes) and read the response's head; the body
        is then read from the connection, which the caller hands back with ``release`` once it
        was read to its end, or closes. ``connect``, ``write`` and ``read`` bound each phase (a
        read or write per operation)."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        conn = self._pool.take(origin)
        reused = conn is not None
        if conn is None:
            conn = await self._connect(origin, connect)
        if on_connected is not None:
            on_connected()
        if reused:
            try:
                return await self._exchange(conn, request, write, read)
            except (httpx.NetworkError, httpx.RemoteProtocolError):
                if conn.received:
                    raise
            conn = await self._connect(origin, connect)
        return await self._exchange(conn, request, write, read)

    async def aclose(self) -> None:
        self._closed = True
        self._pool.close_all()

    def release(self, conn: _Connection) -> None:
        """A connection whose response was read to its end: kept for the next request if it can be."""
        if not self._closed and conn.finish_cycle():
            self._pool.put(conn)
        else:
            conn.close()

    def origin(self, url: httpx.URL) -> Origin:
        """Where ``url``'s connections go; refused here if the policy forbids its scheme."""
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"{scheme}:// is not HTTP")
        if scheme == "http" and not self._policy.allow_http:
            raise DestinationRefused("http:// destinations are not allowed (https only)")
        host = url.raw_host.decode("ascii")
        if not host:
            raise httpx.UnsupportedProtocol(f"{url} has no host")
        return scheme, host, url.port or (443 if scheme == "https" else 80)

    async def _exchange(
        self, conn: _Connection, request: bytes, write: float | None, read: float | None
    ) -> tuple[_Connection, int, bytes, list[tuple[bytes, bytes]]]:
        try:
            await conn.send_all(request, write)
            status, reason, headers = await conn.read_head(read)
        except BaseException:
            conn.close()
            raise
        return conn, status, reason, headers

    async def _connect(self, origin: Origin, limit: float | None) -> _Connection:
        scheme, host, port = origin
        name = _host_port(host, port)
        try:
            with trio.fail_after(math.inf if limit is None else limit):
                addresses = await self._addresses(host)
                tcp = await _open_tcp(addresses, port)
                if scheme == "http":
                    return _Connection(origin, name, tcp, tcp.socket)
                context = self._ssl_context or _default_ssl_context()
                tls = trio.SSLStream(tcp, context, server_hostname=host, https_compatible=True)
                try:
                    await tls.do_handshake()
                except BaseException as exc:
                    tcp.socket.close()
                    if isinstance(exc, trio.BrokenResourceError):
                        raise httpx.ConnectError(f"TLS handshake with {name} failed: {_tls_reason(exc)}") from exc
                    raise
                return _Connection(origin, name, tls, tcp.socket)
        except trio.TooSlowError:
            raise httpx.ConnectTimeout(f"could not connect to {name} within {_seconds(limit)} s") from None

    async def _addresses(self, host: str) -> list[str]:
        """The addresses to connect to, each one checked against the policy."""
        policy_allows = allowed(host, self._policy)
        if not policy_allows and (reason := forbidden_name(host)) is not None:
            raise DestinationRefused(f"{host} is {reason}; the destination policy refuses it")
        if is_ip(host):
            return [host]
        try:
            addresses = await self._resolve(host)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
        if not addresses:
            raise httpx.ConnectError(f"{host} does not resolve to any address")
        if not policy_allows:
            for address in addresses:
                if (reason := forbidden_address(address)) is not None:
                    raise DestinationRefused(f"{host} resolves to {address}, {reason}; the policy refuses it")
        return addresses


async def _system_resolve(host: str) -> list[str]:
    infos = await trio.socket.getaddrinfo(host, None, type=trio.socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_ssl_context: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    """Created once: loading the system's CA store costs milliseconds."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


async def _open_tcp(addresses: Sequence[str], port: int) -> trio.SocketStream:
    """Connect to the first of ``addresses`` that answers, starting attempts staggered."""
    if len(addresses) == 1:
        return await _open_one(addresses[0], port)
    winners: list[trio.SocketStream] = []
    errors: list[httpx.ConnectError] = []

    async def attempt(address: str, failed: trio.Event) -> None:
        try:
            stream = await _open_one(address, port)
        except httpx.ConnectError as exc:
            errors.append(exc)
            failed.set()
            return
        if winners:
            stream.socket.close()
            return
        winners.append(stream)
        nursery.cancel_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            for address in addresses:
                failed = trio.Event()
                nursery.start_soon(attempt, address, failed)
                with trio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await failed.wait()
    except BaseException:
        for stream in winners:
            stream.socket.close()
        raise
    if winners:
        return winners[0]
    raise httpx.ConnectError("; ".join(str(e) for e in errors))


async def _open_one(address: str, port: int) -> trio.SocketStream:
    name = _host_port(address, port)
    try:
        # A numeric host is converted without a lookup (and without a thread).
        infos = await trio.socket.getaddrinfo(address, port, type=trio.socket.SOCK_STREAM, flags=_NUMERIC)
        family, kind, proto, _, sockaddr = infos[0]
        sock = trio.socket.socket(family, kind, proto)
    except OSError as exc:
        raise httpx.ConnectError(f"cannot connect to {name}: {exc.strerror or exc}") from exc
    try:
        await sock.connect(sockaddr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.ECONNREFUSED:
            raise httpx.ConnectError(f"connection refused by {name}") from exc
        raise httpx.ConnectError(f"cannot connect to {name}: {exc.strerror or exc}") from exc
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


_NUMERIC = trio.socket.AI_NUMERICHOST | getattr(trio.socket, "AI_NUMERICSERV", 0)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _seconds(value: float | None) -> str:
    return repr(float(value)) if value is not None else "∞"


def _reason(exc: BaseException) -> str:
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return str(cause or exc) or type(cause or exc).__name__


def _tls_reason(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
        return f"certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError) and cause.reason:
        return cause.reason.lower().replace("_", " ")
    return _reason(exc)


# -- the sender ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """``trio.current_time()`` at the start, once a connection was ready (None if it never
    was), and at the end of an attempt."""

    start: float
    connected: float | None
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one POST produced, as the attempt history records it.

    Exactly one of ``status`` and ``failure`` is set, so that ``policy.Result(status, failure,
    ...)`` cannot take a 200 whose body then stalled for a success; ``headers`` and ``body`` hold
    whatever arrived even then, and ``error`` names the status. ``body`` holds at most the
    sender's ``max_response_body`` bytes.
    """

    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: bytes
    failure: Failure | None
    error: str
    timing: Timing
    sent_headers: tuple[tuple[str, str], ...] = ()
    """The request headers exactly as sent, Host and Content-Length included."""

    @property
    def succeeded(self) -> bool:
        return self.failure is None and self.status is not None and 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        """The first response header called ``name`` (any case), or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)

    def result(self, now: datetime) -> Result:
        """The retry policy's view of this outcome; ``now`` is when it ended, to read Retry-After."""
        retry_after = parse_retry_after(self.header("retry-after"), now)
        return Result(self.status, self.failure, self.error, retry_after)


class Sender:
    """POSTs deliveries: exactly the given headers plus Host, Content-Length and User-Agent.

    ``timeout`` bounds the connect phase (resolving, the policy check, TCP and TLS) and then,
    from the moment a connection is ready, the whole exchange until the body is read (DESIGN
    §4: "timeout 5 s after connect"). Redirects are reported, never followed. At most
    ``max_response_body`` bytes of a response are read; a connection whose response was not
    read to its end is closed, not reused.
    """

    def __init__(
        self,
        policy: DestinationPolicy,
        user_agent: str,
        max_response_body: int = 8192,
        pool_idle_per_origin: int = 16,
        *,
        pool_idle_total: int = 256,
        resolve: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_response_body < 0:
            raise ValueError("max_response_body must not be negative")
        if not (_NAMES.fullmatch("User-Agent\n") and _VALUES.fullmatch(f"{user_agent}\n")):
            raise ValueError("the user agent cannot be sent in an HTTP/1.1 header")
        self._user_agent = user_agent
        self._user_agent_line = f"User-Agent: {user_agent}\r\n".encode()
        self._max_response_body = max_response_body
        self._urls: dict[str, _Target] = {}
        self._valid_names: set[str] = set()  # header name lists seen valid, "\n"-joined
        self._transport = H11Transport(
            policy,
            pool_idle_per_origin=pool_idle_per_origin,
            pool_idle_total=pool_idle_total,
            resolve=resolve,
            ssl_context=ssl_context,
        )

    @property
    def transport(self) -> H11Transport:
        return self._transport

    @property
    def max_response_body(self) -> int:
        return self._max_response_body

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def post(
        self,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        timeout: float,  # noqa: ASYNC109 - it starts after connect, which an enclosing cancel scope cannot express
    ) -> Outcome:
        """Deliver ``body`` to ``url``. Raises only for misuse: ValueError for a timeout that is not
        positive, RuntimeError after ``aclose()``.

        Headers the sender owns (``RESERVED_HEADERS``) or that HTTP/1.1 cannot carry come back as
        ``Failure.RENDER`` without anything sent: they come from payload formats, and a plugin's
        mistake should fail its delivery, not the engine.
        """
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        attempt = _Attempt(trio.current_time())
        reserved = next((name for name, _ in headers if name.lower() in RESERVED_HEADERS), None)
        if reserved is not None:
            return self._outcome(attempt, Failure.RENDER, f"the {reserved} header is set by the sender")
        try:
            block = "".join([f"{name}: {value}\r\n" for name, value in headers]).encode()
        except UnicodeEncodeError:
            return self._outcome(attempt, Failure.RENDER, "a header is not encodable as UTF-8")
        with trio.CancelScope(deadline=attempt.start + timeout) as scope:

            def on_connected() -> None:
                attempt.connected = trio.current_time()
                scope.deadline = attempt.connected + timeout

            failure, error = await self._exchange(url, headers, block, body, on_connected, attempt)
            return self._outcome(attempt, failure, error)
        within = f"within {_seconds(timeout)} s"
        if attempt.connected is None:
            return self._outcome(attempt, Failure.CONNECT, f"could not connect to {attempt.destination} {within}")
        if attempt.status is None:
            return self._outcome(attempt, Failure.TIMEOUT, f"no response {within}")
        return self._outcome(attempt, Failure.TIMEOUT, f"the HTTP {attempt.status} response did not end {within}")

    async def _exchange(
        self,
        url: str,
        headers: Sequence[tuple[str, str]],
        block: bytes,
        body: bytes,
        on_connected: Callable[[], None],
        attempt: _Attempt,
    ) -> tuple[Failure | None, str]:
        """Send the request and read the response into ``attempt``; the failure, if any, and the error text.

        The request is written as bytes here: the head the target repeats for every request
        (request line and Host), then the given headers (``block``, already encoded), checked
        as h11 checks them, in the order httpx would have sent them (a Content-Length of 0
        second, any other last)."""
        destination = self._urls.get(url)
        if destination is None:
            try:
                destination = _Target.of(url, self._transport)
            except httpx.InvalidURL as exc:
                return Failure.REFUSED_DESTINATION, f"{url!r} is not a valid URL: {exc}"
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[url] = destination
        user_agent = ("User-Agent", self._user_agent)
        if body:
            length = str(len(body))
            attempt.sent_headers = (*destination.host_header, *headers, user_agent, ("Content-Length", length))
        else:
            attempt.sent_headers = (*destination.host_header, ("Content-Length", "0"), *headers, user_agent)
        attempt.destination = destination.destination
        if destination.refused:
            return Failure.REFUSED_DESTINATION, destination.refused
        names = "\n".join([name for name, _ in headers])
        if names not in self._valid_names:
            if not _NAMES.fullmatch(f"{names}\n" if names else ""):
                return Failure.RENDER, _invalid_header(headers)
            if len(self._valid_names) >= URL_CACHE_SIZE:
                self._valid_names.clear()
            self._valid_names.add(names)
        if destination.origin is None or not _valid_values("\n".join([value for _, value in headers]), len(headers)):
            return Failure.RENDER, _invalid_header(headers)
        if body:
            framing = b"Content-Length: %s\r\n\r\n" % length.encode()
            request = b"".join((destination.head, block, self._user_agent_line, framing, body))
        else:
            request = b"%sContent-Length: 0\r\n%s%s\r\n" % (destination.head, block, self._user_agent_line)
        try:
            conn, status, reason, raw = await self._transport.exchange(destination.origin, request, on_connected)
            attempt.status = status
            attempt.headers = _decode_headers(raw)
            ended = False
            try:
                while attempt.size <= self._max_response_body:
                    chunk = await conn.read_body(None)
                    if chunk is None:
                        ended = True
                        break
                    attempt.chunks.append(chunk)
                    attempt.size += len(chunk)
            finally:
                if ended:
                    self._transport.release(conn)
                else:  # not read to its end: the connection cannot carry another request
                    conn.close()
        except (DestinationRefused, httpx.UnsupportedProtocol) as exc:
            return Failure.REFUSED_DESTINATION, str(exc)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return Failure.CONNECT, str(exc)
        except httpx.TransportError as exc:
            begun = f" after the head of an HTTP {attempt.status} response" if attempt.status is not None else ""
            return Failure.NETWORK, f"{exc}{begun}"
        if 300 <= status < 400:
            location = ", ".join(value for name, value in attempt.headers if name.lower() == "location")
            target = f"to {location}" if location else "without a Location"
            return None, f"redirects are not followed ({status} {target})"
        if not 200 <= status < 300:
            return None, f"HTTP {status} {_decode(reason)}".rstrip()
        return None, ""

    def _outcome(self, attempt: _Attempt, failure: Failure | None, error: str) -> Outcome:
        return Outcome(
            status=attempt.status if failure is None else None,
            headers=attempt.headers,
            body=b"".join(attempt.chunks)[: self._max_response_body],
            failure=failure,
            error=error,
            timing=Timing(attempt.start, attempt.connected, trio.current_time()),
            sent_headers=attempt.sent_headers,
        )


_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Target:
    """A parsed destination URL and what every request to it repeats: its origin (or why the
    transport refuses it), the Host header, and the request line with Host as bytes."""

    origin: Origin | None
    refused: str
    host_header: tuple[tuple[str, str], ...]
    head: bytes
    destination: str

    @classmethod
    def of(cls, url: str, transport: H11Transport) -> _Target:
        parsed = httpx.URL(url)
        netloc = parsed.netloc
        host_header = (("Host", _decode(netloc)),) if parsed.host else ()
        port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 0)
        origin: Origin | None = None
        refused = ""
        try:
            origin = transport.origin(parsed)
        except (DestinationRefused, httpx.UnsupportedProtocol) as exc:
            refused = str(exc)
        target = parsed.raw_path
        if not _TARGET.fullmatch(target):
            origin = None  # nothing can be sent (refused, if it is, says so first)
        head = b"POST %s HTTP/1.1\r\nHost: %s\r\n" % (target, netloc)
        return cls(origin, refused, host_header, head, _host_port(parsed.host, port))


@dataclass(slots=True)
class _Attempt:
    """What is known so far about one POST, so that a failure part-way still reports it."""

    start: float
    connected: float | None = None
    destination: str = ""
    sent_headers: tuple[tuple[str, str], ...] = ()
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


def _request_head(method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A request's head as h11 would write it (Host first), checked as h11 checks it."""
    if not _TOKEN_RE.fullmatch(method) or not _TARGET.fullmatch(target):
        raise httpx.LocalProtocolError("the request line is not valid HTTP/1.1")
    host: list[bytes] = []
    rest: list[bytes] = []
    for name, value in headers:
        if not _TOKEN_RE.fullmatch(name) or not _FIELD_VALUE_RE.fullmatch(value):
            # Not the header's value: it may be a secret.
            raise httpx.LocalProtocolError("the request headers are not valid HTTP/1.1")
        (host if name.lower() == b"host" else rest).append(b"%s: %s\r\n" % (name, value))
    if not host:
        raise httpx.LocalProtocolError("the request has no Host header")
    return b"%s %s HTTP/1.1\r\n%s%s\r\n" % (method, target, b"".join(host), b"".join(rest))


_TOKEN_RE = re.compile(_TOKEN)
_FIELD_VALUE_RE = re.compile(_FIELD_VALUE)


def _invalid_header(headers: Sequence[tuple[str, str]]) -> str:
    """Which header HTTP/1.1 cannot carry, without its value: the value may be a secret."""
    for name, value in headers:
        if not _NAMES.fullmatch(f"{name}\n") or not _VALUES.fullmatch(f"{value}\n"):
            return f"the {name!r} header cannot be sent: HTTP/1.1 does not allow its name or value"
    return "the request headers cannot be sent in HTTP/1.1"


def _valid_values(joined: str, count: int) -> bool:
    """Whether ``count`` header values joined by "\\n" are each one h11 would send (no control
    whitespace but inner spaces and tabs, none at either end, no NUL): a few scans in C, where the
    grammar's regular expression costs microseconds for a signature's length."""
    if joined.count("\n") != max(count - 1, 0):
        return False
    for bad in ("\x00", "\r", "\f", "\v", "\n ", "\n\t", " \n", "\t\n"):
        if bad in joined:
            return False
    return not joined or (joined[0] not in " \t" and joined[-1] not in " \t")


def _decode_headers(raw: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((_decode(name), _decode(value)) for name, value in raw)


def _decode(value: bytes) -> str:
    """Header bytes as text: UTF-8 when they are, Latin-1 (which cannot fail) otherwise."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")
