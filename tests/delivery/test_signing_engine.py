"""Signing in the engine, in virtual time: exact timestamps per attempt, and a rotation's overlap
ending at exactly the second it should.

Signatures are recomputed with the PyPI ``standardwebhooks`` library's own ``sign`` for the
received id, timestamp and body. (Its ``verify`` checks the timestamp against the real clock,
which virtual time is not, so the end-to-end ``verify`` calls are in tests/api/test_signing.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio
from standardwebhooks.webhooks import Webhook
from trio.testing import MockClock

from tests.delivery.world import ORIGIN, rfi, world
from tests.receivers import Received, Reply, ScriptedReceiver
from tidings_server.domain.hooks import HookInput
from tidings_server.domain.model import DeliveryStatus


def expected(secret: str, request: Received) -> str:
    """The signature ``secret`` makes for what ``request`` carried, by the reference library."""
    stamp = datetime.fromtimestamp(int(request.header("webhook-timestamp") or ""), UTC)
    return Webhook(secret).sign(request.header("webhook-id") or "", stamp, request.body.decode())


def signatures(request: Received) -> list[str]:
    return (request.header("webhook-signature") or "").split(" ")


async def test_each_attempt_is_signed_at_its_own_time_with_a_stable_id(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(ScriptedReceiver(Reply(500), Reply(503), default=Reply(200)).run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        assert w.clock.now() == ORIGIN
        [published] = await w.publish(rfi())
        [delivery] = await w.settle(hook)
        assert delivery.status is DeliveryStatus.DELIVERED
        first = int(ORIGIN.timestamp())
        assert [r.header("webhook-timestamp") for r in receiver.requests] == [
            str(first),
            str(first + 1),
            str(first + 3),
        ]
        assert {r.header("webhook-id") for r in receiver.requests} == {published.event_id}
        for request in receiver.requests:
            assert signatures(request) == [expected(hook.signing_secret, request)]
        # The stored attempt shows what was sent, signature included (it proves nothing without
        # the secret, and receivers debugging a mismatch need to see it).
        attempts = await w.attempts(delivery)
        assert [dict(a.request_headers)["webhook-timestamp"] for a in attempts] == [
            str(first),
            str(first + 1),
            str(first + 3),
        ]


async def test_the_previous_secret_signs_until_the_overlap_ends_to_the_second(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        await trio.sleep(100)
        rotated = await w.hooks.rotate_signing_secret(hook.name, timedelta(minutes=10))
        rotation = ORIGIN + timedelta(seconds=100)
        assert rotated.previous_secret_expire_time == rotation + timedelta(minutes=10)
        assert rotated.previous_signing_secret == hook.signing_secret
        assert rotated.signing_secret not in (hook.signing_secret, "")

        for resource_id, wait in ((1, 0), (2, 599), (3, 1)):
            await trio.sleep(wait)
            await w.publish(rfi(resource_id))
            await w.settle(hook, resource_id)
        at_rotation, just_before_end, at_end = receiver.requests
        assert [r.header("webhook-timestamp") for r in receiver.requests] == [
            str(int(rotation.timestamp())),
            str(int(rotation.timestamp()) + 599),
            str(int(rotation.timestamp()) + 600),
        ]
        for request in (at_rotation, just_before_end):
            assert signatures(request) == [
                expected(rotated.signing_secret, request),
                expected(hook.signing_secret, request),
            ]
        assert signatures(at_end) == [expected(rotated.signing_secret, at_end)]
        assert expected(hook.signing_secret, at_end) not in (at_end.header("webhook-signature") or "")

        shown = await w.hooks.get_hook(hook.name)
        assert (shown.previous_signing_secret, shown.previous_secret_expire_time) == ("", None)


async def test_a_second_rotation_drops_the_oldest_secret(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        first = await w.hooks.rotate_signing_secret(hook.name, timedelta(hours=1))
        await trio.sleep(60)
        second = await w.hooks.rotate_signing_secret(hook.name, None)  # the default: 24 h
        assert second.previous_secret_expire_time == ORIGIN + timedelta(seconds=60, hours=24)
        await w.publish(rfi())
        await w.settle(hook)
        [request] = receiver.requests
        newest, previous = second.signing_secret, first.signing_secret
        assert signatures(request) == [expected(newest, request), expected(previous, request)]
        assert expected(hook.signing_secret, request) not in signatures(request)


async def test_disabled_signing_sends_no_webhook_headers(autojump_clock: MockClock, nursery: trio.Nursery) -> None:
    receiver = await nursery.start(ScriptedReceiver(default=Reply(200)).run)
    async with world() as w:
        hook = await w.hook(receiver.url())
        await w.hooks.update_hook(hook.name, HookInput(signing_disabled=True), ["signing_disabled"])
        await w.publish(rfi())
        await w.settle(hook)
        [request] = receiver.requests
        assert [k for k, _ in request.headers if k.lower().startswith("webhook-")] == []
        assert request.header("tidings-delivery-id")
