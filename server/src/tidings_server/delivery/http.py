"""The HTTP client of the delivery engine: httpx requests carried by h11 over trio streams.

Why a transport of our own: under trio, one pooled ``httpx.AsyncClient`` managed ~900
deliveries/s where h11 over trio streams managed ~11k/s (DESIGN §7); the cost is httpx's
default connection pool, not trio. ``H11Transport`` keeps httpx's request and response types
(any ``httpx.AsyncClient`` can use it) and replaces that pool with a plain keep-alive pool per
origin. It also enforces the destination policy at connect time, on the addresses it actually
connects to, so a name that resolved to a public address when the hook was created cannot be
pointed at an internal one later.

``Sender`` is what the engine calls: one POST, never a redirect, bounded time, a bounded body,
and every failure turned into an ``Outcome`` instead of an exception. It hands requests to the
transport itself rather than through ``httpx.AsyncClient``, whose per-request work (default
headers, cookies, redirect and auth handling) would add headers we must not send and, measured
with ``python -m bench.http_client``, halve the rate again.
"""

from __future__ import annotations

import errno
import math
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

import h11
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
    """One HTTP/1.1 connection: a trio stream and the h11 state of the exchange on it."""

    __slots__ = ("h11", "idle_since", "name", "origin", "received", "socket", "stream")

    def __init__(self, origin: Origin, name: str, stream: trio.abc.Stream, socket: trio.socket.SocketType) -> None:
        self.origin = origin
        self.name = name  # host:port, for error messages
        self.stream = stream
        self.socket = socket
        self.h11 = h11.Connection(h11.CLIENT)
        self.received = False  # any byte of the current response has arrived
        self.idle_since = 0.0

    def is_stale(self) -> bool:
        """An idle connection with something to read was closed by the server (or is out of step)."""
        return self.socket.fileno() == -1 or self.socket.is_readable()

    def finish_cycle(self) -> bool:
        """Prepare for the next request after a complete exchange; False if the connection must close."""
        h = self.h11
        if h.our_state is not h11.DONE or h.their_state is not h11.DONE or h.trailing_data[0]:
            return False
        h.start_next_cycle()
        return True

    def close(self) -> None:
        """Close at once. Synchronous, so cleanup cannot be interrupted by a cancellation; a TLS
        close_notify is not worth a wait for a connection we are abandoning."""
        self.socket.close()

    async def send_all(self, data: bytes, limit: float | None) -> None:
        self.received = False
        try:
            if limit is None:
                await self.stream.send_all(data)
            else:
                with trio.fail_after(limit):
                    await self.stream.send_all(data)
        except trio.TooSlowError:
            raise httpx.WriteTimeout(f"{self.name} took the request for {_seconds(limit)} s") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpx.WriteError(f"the connection to {self.name} broke while sending: {_reason(exc)}") from exc

    async def next_event(self, limit: float | None) -> h11.Event:
        """The next h11 event from the server, reading as needed; ``limit`` bounds each read."""
        ended = False
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                what = "closed the connection mid-response" if ended else "broke the HTTP/1.1 protocol"
                raise httpx.RemoteProtocolError(f"{self.name} {what}: {exc}") from exc
            if event is h11.NEED_DATA:
                data = await self._receive(limit)
                if not data and not self.received:
                    raise httpx.RemoteProtocolError(f"{self.name} closed the connection without answering")
                ended = not data
                self.received = True
                self.h11.receive_data(data)
                continue
            if not isinstance(event, h11.Event) or isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError(f"{self.name} closed the connection mid-response")
            return event

    async def _receive(self, limit: float | None) -> bytes:
        try:
            if limit is None:
                return bytes(await self.stream.receive_some(RECEIVE_SIZE))
            with trio.fail_after(limit):
                return bytes(await self.stream.receive_some(RECEIVE_SIZE))
        except trio.TooSlowError:
            raise httpx.ReadTimeout(f"{self.name} sent nothing for {_seconds(limit)} s") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise httpx.ReadError(f"the connection to {self.name} broke: {_reason(exc)}") from exc


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
            event = await conn.next_event(self._read_limit)
        except BaseException:
            self._conn = None
            conn.close()
            raise
        if isinstance(event, h11.Data):
            return bytes(event.data)
        self._conn = None
        if isinstance(event, h11.EndOfMessage):
            self._transport._release(conn)
            return None
        conn.close()
        raise httpx.RemoteProtocolError(f"{conn.name} sent {type(event).__name__} inside a response body")

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
        origin = self._origin(request.url)
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        on_connected: Callable[[], None] | None = request.extensions.get(ON_CONNECTED)
        try:
            head = h11.Request(method=request.method, target=request.url.raw_path, headers=request.headers.raw)
        except h11.LocalProtocolError as exc:
            # Not h11's message: it quotes the header value, which may be a secret.
            raise httpx.LocalProtocolError("the request headers are not valid HTTP/1.1") from exc
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()

        conn = self._pool.take(origin)
        reused = conn is not None
        if conn is None:
            conn = await self._connect(origin, timeouts.get("connect"))
        if on_connected is not None:
            on_connected()
        if reused:
            try:
                return await self._exchange(conn, head, body, timeouts)
            except (httpx.NetworkError, httpx.RemoteProtocolError):
                if conn.received:
                    raise
            conn = await self._connect(origin, timeouts.get("connect"))
        return await self._exchange(conn, head, body, timeouts)

    async def aclose(self) -> None:
        self._closed = True
        self._pool.close_all()

    def _release(self, conn: _Connection) -> None:
        if not self._closed and conn.finish_cycle():
            self._pool.put(conn)
        else:
            conn.close()

    def _origin(self, url: httpx.URL) -> Origin:
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
        self, conn: _Connection, head: h11.Request, body: bytes, timeouts: dict[str, float | None]
    ) -> httpx.Response:
        try:
            h = conn.h11
            data = h.send(head) or b""
            if body:
                data += h.send(h11.Data(data=body)) or b""
            data += h.send(h11.EndOfMessage()) or b""
            await conn.send_all(data, timeouts.get("write"))
            while True:
                event = await conn.next_event(timeouts.get("read"))
                if isinstance(event, h11.Response):
                    break
                if not isinstance(event, h11.InformationalResponse):
                    raise httpx.RemoteProtocolError(f"{conn.name} sent {type(event).__name__} instead of a response")
        except BaseException:
            conn.close()
            raise
        return httpx.Response(
            event.status_code,
            headers=event.headers.raw_items(),
            stream=_ResponseStream(self, conn, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": event.reason},
        )

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
    cause = exc.__cause__
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
        self._user_agent = user_agent.encode()
        self._max_response_body = max_response_body
        self._urls: dict[str, _Target] = {}
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
            raw_headers = [
                *((name.encode(), value.encode()) for name, value in headers),
                (b"User-Agent", self._user_agent),
            ]
        except UnicodeEncodeError:
            return self._outcome(attempt, Failure.RENDER, "a header is not encodable as UTF-8")
        with trio.CancelScope(deadline=attempt.start + timeout) as scope:

            def on_connected() -> None:
                attempt.connected = trio.current_time()
                scope.deadline = attempt.connected + timeout

            failure, error = await self._exchange(url, raw_headers, body, on_connected, attempt)
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
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        on_connected: Callable[[], None],
        attempt: _Attempt,
    ) -> tuple[Failure | None, str]:
        """Send the request and read the response into ``attempt``; the failure, if any, and the error text."""
        destination = self._urls.get(url)
        if destination is None:
            try:
                destination = _Target.of(url)
            except httpx.InvalidURL as exc:
                return Failure.REFUSED_DESTINATION, f"{url!r} is not a valid URL: {exc}"
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[url] = destination
        # The headers httpx.Request(content=body) would add, in its order (Host first; a
        # Content-Length of 0 second, any other last), given here so that httpx need not
        # work them out again for every request.
        if body:
            raw = [*destination.host_header, *headers, (b"Content-Length", str(len(body)).encode())]
        else:
            raw = [*destination.host_header, (b"Content-Length", b"0"), *headers]
        request = httpx.Request(
            "POST", destination.url, headers=raw, stream=httpx.ByteStream(body), extensions={ON_CONNECTED: on_connected}
        )
        request.read()
        attempt.sent_headers = _decode_headers(raw)
        attempt.destination = destination.destination
        try:
            response = await self._transport.handle_async_request(request)
            stream = response.stream
            assert isinstance(stream, _ResponseStream)
            try:
                attempt.status = response.status_code
                attempt.headers = _decode_headers(response.headers.raw)
                while attempt.size <= self._max_response_body and (chunk := await stream.receive()) is not None:
                    attempt.chunks.append(chunk)
                    attempt.size += len(chunk)
            finally:
                await stream.aclose()
        except (DestinationRefused, httpx.UnsupportedProtocol) as exc:
            return Failure.REFUSED_DESTINATION, str(exc)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            return Failure.CONNECT, str(exc)
        except httpx.LocalProtocolError:
            return Failure.RENDER, _invalid_header(headers)
        except httpx.TransportError as exc:
            begun = f" after the head of an HTTP {attempt.status} response" if attempt.status is not None else ""
            return Failure.NETWORK, f"{exc}{begun}"
        status = response.status_code
        if 300 <= status < 400:
            location = response.headers.get("location")
            target = f"to {location}" if location else "without a Location"
            return None, f"redirects are not followed ({status} {target})"
        if not 200 <= status < 300:
            reason = response.extensions.get("reason_phrase", b"")
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
    """A parsed destination URL and what every request to it repeats."""

    url: httpx.URL
    host_header: tuple[tuple[bytes, bytes], ...]
    destination: str

    @classmethod
    def of(cls, url: str) -> _Target:
        parsed = httpx.URL(url)
        host_header = ((b"Host", parsed.netloc),) if parsed.host else ()
        port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme, 0)
        return cls(parsed, host_header, _host_port(parsed.host, port))


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


def _invalid_header(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """Which header h11 refused, without its value: the value may be a secret."""
    for name, value in headers:
        try:
            h11.Request(method="POST", target="/", headers=[(b"Host", b"h"), (name, value)])
        except h11.LocalProtocolError:
            return f"the {_decode(name)!r} header cannot be sent: HTTP/1.1 does not allow its name or value"
    return "the request headers cannot be sent in HTTP/1.1"


def _decode_headers(raw: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((_decode(name), _decode(value)) for name, value in raw)


def _decode(value: bytes) -> str:
    """Header bytes as text: UTF-8 when they are, Latin-1 (which cannot fail) otherwise."""
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")
