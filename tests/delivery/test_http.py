"""The delivery HTTP client against a scripted receiver: statuses, failures, timing, pooling, policy.

Tests that involve waiting run on the virtual clock (``autojump_clock``), so a 5 s timeout is
asserted to the exact virtual second and costs no real time.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio
import trio.testing
import trustme

from tests.receivers import CLOSE, HANG, Reply, ScriptedReceiver, refused_port
from tidings_server.delivery.http import KEEPALIVE_EXPIRY, H11Transport, Sender
from tidings_server.delivery.policy import Failure
from tidings_server.domain.destinations import DestinationPolicy

LOCAL = DestinationPolicy(allow_http=True, allow_private=True)
"""Receivers in tests listen on loopback over http; the production defaults refuse both."""
USER_AGENT = "tidings-test/1"
TIMEOUT = 5.0


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    async with Sender(LOCAL, USER_AGENT) as sender:
        yield sender


# -- statuses ------------------------------------------------------------------------------------


async def test_200_with_body(nursery: trio.Nursery, sender: Sender) -> None:
    receiver = await ScriptedReceiver(Reply(200, (("Content-Type", "text/plain"),), b"thanks")).start(nursery)
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.body, outcome.failure, outcome.error) == (200, b"thanks", None, "")
    assert outcome.succeeded
    assert outcome.headers == (("Content-Type", "text/plain"), ("Content-Length", "6"))
    assert outcome.timing.connected is not None
    assert outcome.timing.start <= outcome.timing.connected <= outcome.timing.end


async def test_500_is_a_status_not_a_failure(nursery: trio.Nursery, sender: Sender) -> None:
    receiver = await ScriptedReceiver(Reply(500, body=b"oops")).start(nursery)
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.body, outcome.failure, outcome.error) == (500, b"oops", None, "HTTP 500")
    assert not outcome.succeeded


async def test_429_retry_after_is_visible(nursery: trio.Nursery, sender: Sender) -> None:
    receiver = await ScriptedReceiver(Reply(429, (("Retry-After", "120"),))).start(nursery)
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert outcome.status == 429
    assert ("Retry-After", "120") in outcome.headers
    assert outcome.header("retry-after") == "120"
    assert outcome.result(datetime(2025, 1, 1, tzinfo=UTC)).retry_after == timedelta(seconds=120)


async def test_410(nursery: trio.Nursery, sender: Sender) -> None:
    receiver = await ScriptedReceiver(Reply(410)).start(nursery)
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure) == (410, None)
    assert outcome.result(datetime(2025, 1, 1, tzinfo=UTC)).status == 410


async def test_redirect_is_not_followed(nursery: trio.Nursery, sender: Sender) -> None:
    elsewhere = "https://hooks.example.com/moved"
    receiver = await ScriptedReceiver(Reply(301, (("Location", elsewhere),)), default=Reply(200)).start(nursery)
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure) == (301, None)
    assert outcome.error == f"redirects are not followed (301 to {elsewhere})"
    assert len(receiver.requests) == 1


# -- failures and time -------------------------------------------------------------------------


async def test_hang_times_out_at_exactly_the_timeout(
    nursery: trio.Nursery, sender: Sender, autojump_clock: trio.testing.MockClock
) -> None:
    receiver = await ScriptedReceiver(HANG).start(nursery)
    start_time = trio.current_time()
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure, outcome.error) == (None, Failure.TIMEOUT, "no response within 5.0 s")
    assert outcome.timing.start == outcome.timing.connected == start_time
    assert trio.current_time() - start_time == pytest.approx(TIMEOUT, abs=1e-9)
    assert outcome.timing.end == pytest.approx(start_time + TIMEOUT, abs=1e-9)
    assert len(receiver.requests) == 1


async def test_slow_answer_within_the_timeout(
    nursery: trio.Nursery, sender: Sender, autojump_clock: trio.testing.MockClock
) -> None:
    receiver = await ScriptedReceiver(Reply(202, delay=4.5), Reply(200, delay=5.5)).start(nursery)
    in_time = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (in_time.status, in_time.failure) == (202, None)
    assert in_time.timing.duration == pytest.approx(4.5, abs=1e-9)
    too_late = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert too_late.failure is Failure.TIMEOUT
    assert too_late.timing.duration == pytest.approx(TIMEOUT, abs=1e-9)


async def test_timeout_counts_from_connect(nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    """A slow name lookup uses connect time; the exchange still gets the full timeout after it."""

    async def slow_resolve(host: str) -> list[str]:
        await trio.sleep(3)
        return ["127.0.0.1"]

    receiver = await ScriptedReceiver(HANG).start(nursery)
    policy = DestinationPolicy(allow_http=True, allowed_hosts=frozenset({"receiver.test"}))
    async with Sender(policy, USER_AGENT, resolve=slow_resolve) as sender:
        outcome = await sender.post(f"http://receiver.test:{receiver.port}/", [], b"{}", TIMEOUT)
    assert outcome.failure is Failure.TIMEOUT
    assert outcome.timing.connected == pytest.approx(outcome.timing.start + 3, abs=1e-9)
    assert outcome.timing.end == pytest.approx(outcome.timing.start + 3 + TIMEOUT, abs=1e-9)


async def test_connect_phase_is_bounded_too(autojump_clock: trio.testing.MockClock) -> None:
    async def stuck_resolve(host: str) -> list[str]:
        await trio.sleep_forever()
        raise AssertionError

    async with Sender(LOCAL, USER_AGENT, resolve=stuck_resolve) as sender:
        outcome = await sender.post("http://receiver.test:8080/", [], b"{}", TIMEOUT)
    assert (outcome.failure, outcome.timing.connected) == (Failure.CONNECT, None)
    assert outcome.error == "could not connect to receiver.test:8080 within 5.0 s"
    assert outcome.timing.duration == pytest.approx(TIMEOUT, abs=1e-9)


async def test_connection_refused(sender: Sender) -> None:
    with refused_port() as port:
        outcome = await sender.post(f"http://127.0.0.1:{port}/", [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure) == (None, Failure.CONNECT)
    assert outcome.error == f"connection refused by 127.0.0.1:{port}"
    assert outcome.timing.connected is None


async def test_close_without_answer_is_a_network_failure(nursery: trio.Nursery, sender: Sender) -> None:
    receiver = await ScriptedReceiver(CLOSE, default=Reply(200)).start(nursery)
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure) == (None, Failure.NETWORK)
    assert outcome.error == f"127.0.0.1:{receiver.port} closed the connection without answering"
    assert len(receiver.requests) == 1  # a new connection is not retried


async def test_huge_body_is_read_only_up_to_the_bound(nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver(Reply(200, body=b"ok:", filler=10_000_000), default=Reply(204)).start(nursery)
    async with Sender(LOCAL, USER_AGENT, max_response_body=1000) as sender:
        outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
        assert (outcome.status, outcome.failure) == (200, None)
        assert outcome.body == b"ok:" + b"x" * 997
        assert sender.transport.idle_connections == 0
        again = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert again.status == 204
    assert receiver.connections == 2


async def test_body_of_exactly_the_bound_keeps_the_connection(nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver(default=Reply(200, body=b"y" * 1000)).start(nursery)
    async with Sender(LOCAL, USER_AGENT, max_response_body=1000) as sender:
        for _ in range(2):
            assert (await sender.post(receiver.url(), [], b"{}", TIMEOUT)).body == b"y" * 1000
    assert receiver.connections == 1


async def test_body_that_stalls_is_a_timeout(
    nursery: trio.Nursery, sender: Sender, autojump_clock: trio.testing.MockClock
) -> None:
    receiver = await ScriptedReceiver(Reply(200, body=b"partial", filler=100, stall=True)).start(nursery)
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    # Not a success: the status is withheld, so that the policy cannot count it as one.
    assert (outcome.status, outcome.body, outcome.failure) == (None, b"partial", Failure.TIMEOUT)
    assert outcome.error == "the HTTP 200 response did not end within 5.0 s"
    assert outcome.header("Content-Length") == "107"
    assert outcome.timing.duration == pytest.approx(TIMEOUT, abs=1e-9)


async def test_body_cut_short_is_a_network_failure(nursery: trio.Nursery, sender: Sender) -> None:
    # The receiver declares 100 bytes, sends 5 and drops the connection.
    receiver = await ScriptedReceiver(Reply(200, (("Content-Length", "100"),), b"short")).start(nursery)
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.body, outcome.failure) == (None, b"short", Failure.NETWORK)
    assert outcome.error.startswith(f"127.0.0.1:{receiver.port} closed the connection mid-response")
    assert outcome.error.endswith("after the head of an HTTP 200 response")
    assert sender.transport.idle_connections == 0


# -- responses as written on the wire -------------------------------------------------------------


async def raw_receiver(nursery: trio.Nursery, *answers: bytes) -> tuple[int, list[int]]:
    """A receiver that answers each request (read up to its end, the test's bodies being small)
    with the next of ``answers`` as it stands, then closes the connection if the answers are used
    up; returns its port and a list counting its connections."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    connections: list[int] = []
    left = list(answers)

    async def serve(stream: trio.SocketStream) -> None:
        connections.append(1)
        async with stream:
            received = b""
            while left:
                while b"\r\n\r\n{}" not in received:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    received += data
                received = received.partition(b"\r\n\r\n{}")[2]
                await stream.send_all(left.pop(0))

    nursery.start_soon(trio.serve_listeners, serve, listeners)
    return listeners[0].socket.getsockname()[1], connections


async def test_chunked_body_with_extensions_and_trailers(nursery: trio.Nursery, sender: Sender) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n"
    port, connections = await raw_receiver(nursery, chunked, chunked)
    outcomes = [await sender.post(f"http://127.0.0.1:{port}/", [], b"{}", TIMEOUT) for _ in range(2)]
    assert [(o.status, o.body, o.failure) for o in outcomes] == [(200, b"Wikipedia", None)] * 2
    assert len(connections) == 1


async def test_informational_response_is_skipped(nursery: trio.Nursery, sender: Sender) -> None:
    port, _ = await raw_receiver(
        nursery, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi"
    )
    outcome = await sender.post(f"http://127.0.0.1:{port}/", [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.headers, outcome.body) == (201, (("Content-Length", "2"),), b"hi")


async def test_folded_header_is_joined(nursery: trio.Nursery, sender: Sender) -> None:
    port, _ = await raw_receiver(nursery, b"HTTP/1.1 503 Busy\r\nRetry-After:\r\n  120\r\nContent-Length: 0\r\n\r\n")
    outcome = await sender.post(f"http://127.0.0.1:{port}/", [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.header("Retry-After"), outcome.error) == (503, "120", "HTTP 503 Busy")


async def test_body_until_close_and_http_1_0_are_not_reused(nursery: trio.Nursery, sender: Sender) -> None:
    port, _ = await raw_receiver(nursery, b"HTTP/1.1 200 OK\r\n\r\nto the end")
    outcome = await sender.post(f"http://127.0.0.1:{port}/", [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.body, sender.transport.idle_connections) == (200, b"to the end", 0)
    port, _ = await raw_receiver(nursery, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    outcome = await sender.post(f"http://127.0.0.1:{port}/", [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.body, sender.transport.idle_connections) == (200, b"ok", 0)


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (b"HTTP/2 200\r\n\r\n", "the status line is not HTTP/1.x"),
        (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "a response header is not valid"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", "the Content-Length is not valid"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "only one Transfer-Encoding: chunked is supported"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "a chunk header is not valid"),
    ],
)
async def test_malformed_response_is_a_network_failure(
    nursery: trio.Nursery, sender: Sender, answer: bytes, what: str
) -> None:
    port, _ = await raw_receiver(nursery, answer)
    outcome = await sender.post(f"http://127.0.0.1:{port}/", [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure) == (None, Failure.NETWORK)
    assert outcome.error.startswith(f"127.0.0.1:{port} broke the HTTP/1.1 protocol: {what}")
    assert sender.transport.idle_connections == 0


async def test_next_address_is_tried_when_one_refuses(nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver().start(nursery)

    async def resolve(host: str) -> list[str]:
        return ["127.0.0.2", "127.0.0.1"]  # nothing listens on 127.0.0.2

    policy = DestinationPolicy(allow_http=True, allowed_hosts=frozenset({"two.test"}))
    async with Sender(policy, USER_AGENT, resolve=resolve) as sender:
        outcome = await sender.post(f"http://two.test:{receiver.port}/", [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure) == (200, None)
    assert receiver.requests[0].header("Host") == f"two.test:{receiver.port}"


async def test_every_address_refusing_is_a_connect_failure() -> None:
    async def resolve(host: str) -> list[str]:
        return ["127.0.0.2", "127.0.0.3"]

    with refused_port() as port:
        async with Sender(LOCAL, USER_AGENT, resolve=resolve) as sender:
            outcome = await sender.post(f"http://two.test:{port}/", [], b"{}", TIMEOUT)
    assert outcome.failure is Failure.CONNECT
    assert outcome.error == f"connection refused by 127.0.0.2:{port}; connection refused by 127.0.0.3:{port}"


# -- keep-alive ----------------------------------------------------------------------------------


async def test_keep_alive_reuses_the_connection(nursery: trio.Nursery, sender: Sender) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    for _ in range(2):
        assert (await sender.post(receiver.url(), [], b"{}", TIMEOUT)).status == 200
    assert receiver.connections == 1
    assert [r.connection for r in receiver.requests] == [1, 1]
    assert sender.transport.idle_connections == 1


async def test_connection_close_is_not_reused(nursery: trio.Nursery, sender: Sender) -> None:
    receiver = await ScriptedReceiver(default=Reply(200, (("Connection", "close"),))).start(nursery)
    for _ in range(2):
        assert (await sender.post(receiver.url(), [], b"{}", TIMEOUT)).status == 200
    assert receiver.connections == 2


async def test_idle_connection_closed_by_the_server_is_replaced(
    nursery: trio.Nursery, sender: Sender, autojump_clock: trio.testing.MockClock
) -> None:
    receiver = await ScriptedReceiver(idle_timeout=1.0).start(nursery)
    assert (await sender.post(receiver.url(), [], b"{}", TIMEOUT)).status == 200
    await trio.sleep(2)
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure) == (200, None)
    assert [r.connection for r in receiver.requests] == [1, 2]


async def test_reused_connection_closed_under_the_request_is_retried_once(
    nursery: trio.Nursery, sender: Sender
) -> None:
    """The server closing a kept-alive connection as the request arrives looks like this."""
    receiver = await ScriptedReceiver(Reply(200), CLOSE, Reply(201), CLOSE, CLOSE).start(nursery)
    assert (await sender.post(receiver.url(), [], b"{}", TIMEOUT)).status == 200
    outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure) == (201, None)
    assert [r.connection for r in receiver.requests] == [1, 1, 2]
    # Retried once only: closed on the reused connection, then on the new one.
    failed = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert failed.failure is Failure.NETWORK
    assert [r.connection for r in receiver.requests] == [1, 1, 2, 2, 3]


async def test_idle_connections_expire(
    nursery: trio.Nursery, sender: Sender, autojump_clock: trio.testing.MockClock
) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    await trio.sleep(KEEPALIVE_EXPIRY)
    await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert receiver.connections == 2


async def test_idle_connections_are_bounded(nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    one = await ScriptedReceiver(default=Reply(delay=1)).start(nursery)
    other = await ScriptedReceiver().start(nursery)
    async with Sender(LOCAL, USER_AGENT, pool_idle_per_origin=2, pool_idle_total=3) as sender:
        async with trio.open_nursery() as posts:
            for _ in range(5):
                posts.start_soon(sender.post, one.url(), [], b"{}", TIMEOUT)
        assert (one.connections, sender.transport.idle_connections) == (5, 2)
        await sender.post(other.url(), [], b"{}", TIMEOUT)
        await sender.post(other.url(), [], b"{}", TIMEOUT)
        assert sender.transport.idle_connections == 3
        await sender.aclose()
        assert sender.transport.idle_connections == 0


# -- destination policy --------------------------------------------------------------------------


async def test_loopback_is_refused_before_connecting(nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    async with Sender(DestinationPolicy(allow_http=True), USER_AGENT) as sender:
        outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.status, outcome.failure) == (None, Failure.REFUSED_DESTINATION)
    assert "127.0.0.1 is a loopback address" in outcome.error
    assert receiver.connections == 0


async def test_name_resolving_to_a_private_address_is_refused(nursery: trio.Nursery) -> None:
    resolved: list[str] = []

    async def resolve(host: str) -> list[str]:
        resolved.append(host)
        return ["93.184.215.14", "10.1.2.3"]  # one public, one private

    async with Sender(DestinationPolicy(), USER_AGENT, resolve=resolve) as sender:
        by_address = await sender.post("https://hooks.example.com/", [], b"{}", TIMEOUT)
        by_name = await sender.post("https://localhost:8443/", [], b"{}", TIMEOUT)
    assert by_address.failure is Failure.REFUSED_DESTINATION
    assert by_address.error == "hooks.example.com resolves to 10.1.2.3, a private address; the policy refuses it"
    assert by_name.failure is Failure.REFUSED_DESTINATION
    assert resolved == ["hooks.example.com"]  # localhost is refused by name, without a lookup


async def test_allowed_host_may_be_loopback(nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    async with Sender(DestinationPolicy(allow_http=True, allowed_hosts=frozenset({"127.0.0.1"})), USER_AGENT) as sender:
        assert (await sender.post(receiver.url(), [], b"{}", TIMEOUT)).status == 200


async def test_http_is_refused_unless_allowed(nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    async with Sender(DestinationPolicy(allow_private=True), USER_AGENT) as sender:
        outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert (outcome.failure, outcome.error) == (
        Failure.REFUSED_DESTINATION,
        "http:// destinations are not allowed (https only)",
    )
    assert receiver.connections == 0


# -- the request on the wire ---------------------------------------------------------------------


async def test_request_is_sent_exactly(nursery: trio.Nursery, sender: Sender) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    body = bytes(range(256)) * 3
    given = [("Content-Type", "application/json"), ("X-Tidings-Event", "evt_1"), ("authorization", "Bearer s3cret")]
    outcome = await sender.post(receiver.url("/hooks/in?tenant=6778"), given, body, TIMEOUT)
    (request,) = receiver.requests
    expected = (
        ("Host", f"127.0.0.1:{receiver.port}"),
        *given,
        ("User-Agent", USER_AGENT),
        ("Content-Length", str(len(body))),
    )
    assert (request.method, request.target, request.headers, request.body) == (
        "POST",
        "/hooks/in?tenant=6778",
        expected,
        body,
    )
    assert outcome.sent_headers == expected


@pytest.mark.parametrize("name", ["Host", "content-length", "Transfer-Encoding", "Connection", "User-Agent"])
async def test_headers_the_sender_owns_are_a_render_failure(nursery: trio.Nursery, sender: Sender, name: str) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    outcome = await sender.post(receiver.url(), [(name, "x")], b"", TIMEOUT)
    assert (outcome.status, outcome.failure) == (None, Failure.RENDER)
    assert outcome.error == f"the {name} header is set by the sender"
    assert receiver.connections == 0


async def test_malformed_header_is_a_render_failure_that_keeps_the_value_secret(
    nursery: trio.Nursery, sender: Sender
) -> None:
    receiver = await ScriptedReceiver().start(nursery)
    headers = [("X-Fine", "ok"), ("Authorization", "Bearer s3cret\r\nInjected: yes")]
    outcome = await sender.post(receiver.url(), headers, b"", TIMEOUT)
    assert (outcome.status, outcome.failure) == (None, Failure.RENDER)
    assert outcome.error == "the 'Authorization' header cannot be sent: HTTP/1.1 does not allow its name or value"
    assert receiver.connections == 0


async def test_timeout_must_be_positive(sender: Sender) -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        await sender.post("https://hooks.example.com/", [], b"", 0)


async def test_transport_serves_a_plain_httpx_client(nursery: trio.Nursery) -> None:
    receiver = await ScriptedReceiver(default=Reply(200, body=b"hello")).start(nursery)
    async with httpx.AsyncClient(transport=H11Transport(LOCAL)) as client:
        responses = [await client.post(receiver.url(), content=b"x") for _ in range(2)]
    assert [(r.status_code, r.content) for r in responses] == [(200, b"hello")] * 2
    assert receiver.connections == 1


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A throwaway certificate authority; only clients told to trust it will."""
    return trustme.CA()


@pytest.fixture
def tls_receiver(authority: trustme.CA) -> ScriptedReceiver:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return ScriptedReceiver(default=Reply(200, body=b"secure"), ssl_context=context)


async def test_https(nursery: trio.Nursery, tls_receiver: ScriptedReceiver, authority: trustme.CA) -> None:
    receiver = await tls_receiver.start(nursery)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with Sender(DestinationPolicy(allow_private=True), USER_AGENT, ssl_context=trusting) as sender:
        outcomes = [await sender.post(receiver.url(), [], b"{}", TIMEOUT) for _ in range(2)]
    assert [(o.status, o.body, o.failure) for o in outcomes] == [(200, b"secure", None)] * 2
    assert receiver.connections == 1


async def test_untrusted_certificate_is_a_connect_failure(
    nursery: trio.Nursery, tls_receiver: ScriptedReceiver
) -> None:
    receiver = await tls_receiver.start(nursery)
    async with Sender(DestinationPolicy(allow_private=True), USER_AGENT) as sender:
        outcome = await sender.post(receiver.url(), [], b"{}", TIMEOUT)
    assert outcome.failure is Failure.CONNECT
    assert outcome.error.startswith(f"TLS handshake with 127.0.0.1:{receiver.port} failed: certificate verify failed")
    assert receiver.requests == []
