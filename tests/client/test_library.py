"""Client and AsyncClient against a real tidings server: hooks, triggers, catalog, publishing."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.harness import ServerThread
from tests.http_sink import Sink
from tidings_client import (
    AlreadyExists,
    AsyncClient,
    Client,
    DeliveryOrdering,
    Event,
    EventMetadata,
    HookChanges,
    HookStatus,
    InvalidArgument,
    NotFound,
    RetryPolicy,
    Scope,
    StatusRange,
    TidingsError,
)

_projects = itertools.count(100)


@pytest.fixture
def project() -> str:
    """A project of its own for each test, so tests sharing the server do not see each other's hooks."""
    return f"companies/8/projects/{next(_projects)}"


@pytest.fixture
def client(real_server: ServerThread) -> Iterator[Client]:
    with Client(f"127.0.0.1:{real_server.port}") as c:
        yield c


def test_hook_lifecycle(client: Client, project: str) -> None:
    policy = RetryPolicy(
        timeout=timedelta(seconds=3),
        retry_window=timedelta(hours=2),
        retryable_statuses=(StatusRange(429, 429), StatusRange(500, 599)),
    )
    hook = client.create_hook(
        project,
        "http://127.0.0.1:9/in",
        "procore.v4",
        display_name="Procore sync",
        authorization_header="Bearer 0123456789abcdef4e94b",
        hook_id="procore-sync",
        retry_policy=policy,
        ordering=DeliveryOrdering.PER_RESOURCE,
        max_concurrency=4,
    )
    assert hook.name == f"{project}/hooks/procore-sync"
    assert hook.authorization_header == "••••••e94b"
    assert "0123456789" not in hook.authorization_header
    assert hook.status is HookStatus.ACTIVE
    assert hook.ordering is DeliveryOrdering.PER_RESOURCE
    assert hook.max_concurrency == 4
    assert hook.retry_policy.timeout == timedelta(seconds=3)
    assert hook.retry_policy.retry_window == timedelta(hours=2)
    assert hook.retry_policy.retryable_statuses == (StatusRange(429, 429), StatusRange(500, 599))
    assert hook.create_time is not None
    assert hook.create_time.tzinfo is UTC
    assert abs(datetime.now(UTC) - hook.create_time) < timedelta(minutes=1)
    # Everything create answered but the secret, which only create and rotation show.
    assert client.get_hook(hook.name) == replace(hook, signing_secret="")

    paused = client.update_hook(hook.name, HookChanges(status=HookStatus.PAUSED, display_name="Paused sync"))
    assert (paused.status, paused.display_name) == (HookStatus.PAUSED, "Paused sync")
    assert paused.destination_url == hook.destination_url
    cleared = client.update_hook(hook.name, HookChanges(authorization_header=""))
    assert cleared.authorization_header == ""

    client.delete_hook(hook.name)
    with pytest.raises(NotFound) as err:
        client.get_hook(hook.name)
    assert err.value.code.name == "NOT_FOUND"
    assert hook.name in err.value.message


def test_signing_secret_is_shown_at_creation_and_rotation_only(client: Client, project: str) -> None:
    hook = client.create_hook(project, "http://127.0.0.1:9/in", "procore.v4")
    assert hook.signing_secret.startswith("whsec_")
    assert len(base64.b64decode(hook.signing_secret.removeprefix("whsec_"), validate=True)) == 32
    assert not hook.signing_disabled
    assert hook.previous_secret_expire_time is None
    assert client.get_hook(hook.name).signing_secret == ""
    assert [h.signing_secret for h in client.list_hooks(project)] == [""]
    renamed = client.update_hook(hook.name, HookChanges(display_name="renamed"))
    assert renamed.signing_secret == ""

    before = datetime.now(UTC)
    rotated = client.rotate_signing_secret(hook.name, overlap=timedelta(hours=3))
    after = datetime.now(UTC)
    assert rotated.signing_secret.startswith("whsec_")
    assert rotated.signing_secret != hook.signing_secret
    assert rotated.previous_secret_expire_time is not None
    assert rotated.previous_secret_expire_time.tzinfo is UTC
    assert before + timedelta(hours=3) - timedelta(seconds=1) <= rotated.previous_secret_expire_time
    assert rotated.previous_secret_expire_time <= after + timedelta(hours=3)
    fetched = client.get_hook(hook.name)
    assert fetched.signing_secret == ""
    # The overlap's end stays visible on reads, so an admin can see until when the old one signs.
    assert fetched.previous_secret_expire_time == rotated.previous_secret_expire_time

    # Unset overlap: the server's default of 24 hours.
    default = client.rotate_signing_secret(hook.name)
    assert default.previous_secret_expire_time is not None
    assert abs(default.previous_secret_expire_time - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    # An overlap of 0: the previous secret stops at once, so there is no overlap to show.
    at_once = client.rotate_signing_secret(hook.name, timedelta(0))
    assert at_once.previous_secret_expire_time is None
    with pytest.raises(InvalidArgument, match="overlap"):
        client.rotate_signing_secret(hook.name, timedelta(days=8))
    with pytest.raises(NotFound):
        client.rotate_signing_secret(f"{project}/hooks/nope")


def test_signing_can_be_turned_off_and_on(client: Client, project: str) -> None:
    unsigned = client.create_hook(project, "http://127.0.0.1:9/in", "procore.v4", signing_disabled=True)
    assert unsigned.signing_disabled
    assert client.get_hook(unsigned.name).signing_disabled
    on = client.update_hook(unsigned.name, HookChanges(signing_disabled=False))
    assert not on.signing_disabled
    assert on.signing_secret == ""
    off = client.update_hook(unsigned.name, HookChanges(signing_disabled=True, display_name="quiet"))
    assert (off.signing_disabled, off.display_name) == (True, "quiet")
    # Rotating does not turn signing on: that stays the admin's separate decision.
    assert client.rotate_signing_secret(unsigned.name).signing_disabled


def test_errors_carry_code_and_message(client: Client, project: str) -> None:
    client.create_hook(project, "http://127.0.0.1:9/in", "procore.v4", hook_id="taken")
    with pytest.raises(AlreadyExists):
        client.create_hook(project, "http://127.0.0.1:9/in", "procore.v4", hook_id="taken")
    with pytest.raises(InvalidArgument) as err:
        client.create_hook(project, "ftp://127.0.0.1/in", "procore.v4")
    assert "hook.destination_url" in err.value.message
    assert str(err.value).startswith("INVALID_ARGUMENT: ")
    assert isinstance(err.value, TidingsError)
    with pytest.raises(ValueError, match="nothing to update"):
        client.update_hook(f"{project}/hooks/taken", HookChanges())


def test_lists_page_transparently(client: Client, project: str) -> None:
    names = {client.create_hook(project, "http://127.0.0.1:9/in", "procore.v3").name for _ in range(5)}
    assert {h.name for h in client.list_hooks(project, page_size=2)} == names
    client.update_hook(sorted(names)[0], HookChanges(status=HookStatus.PAUSED))
    assert [h.name for h in client.list_hooks(project, filter="status = PAUSED", page_size=1)] == [sorted(names)[0]]


def test_triggers(client: Client, project: str) -> None:
    hook = client.create_hook(project, "http://127.0.0.1:9/in", "procore.v4")
    added = client.create_triggers(hook.name, [("RFIs", "create"), ("RFIs", "update"), ("Submittals", "delete")])
    assert [(t.resource_name, t.event_type) for t in added] == [
        ("RFIs", "create"),
        ("RFIs", "update"),
        ("Submittals", "delete"),
    ]
    assert {t.name for t in client.list_triggers(hook.name, page_size=1)} == {t.name for t in added}
    client.delete_triggers(hook.name, [added[0].name])
    assert [t.name for t in client.list_triggers(hook.name)] == sorted(t.name for t in added[1:])
    with pytest.raises(InvalidArgument) as err:
        client.create_triggers(hook.name, [("RFIs", "explode")])
    assert "explode" in err.value.message
    with pytest.raises(NotFound):
        client.delete_triggers(hook.name, [added[0].name])
    client.delete_triggers(hook.name, [added[0].name], allow_missing=True)


def test_catalog(client: Client) -> None:
    resources = list(client.list_resources(Scope.PROJECT, page_size=7))
    assert resources == list(client.list_resources(Scope.PROJECT, page_size=1000))
    rfis = next(r for r in resources if r.resource_name == "RFIs")
    assert rfis.scope is Scope.PROJECT
    assert set(rfis.event_types) == {"create", "update", "delete"}
    assert all(r.scope is Scope.COMPANY for r in client.list_resources(Scope.COMPANY))
    formats = {f.name: f for f in client.list_payload_formats(page_size=1)}
    assert {"procore.v2", "procore.v3", "procore.v4"} <= set(formats)
    assert formats["procore.v4"].distribution == "tidings-procore"


def rfi(resource_id: int, project_id: int, **fields: object) -> Event:
    return Event(
        company_id=8,
        project_id=project_id,
        resource_name="RFIs",
        resource_id=resource_id,
        event_type="update",
        user_id=5447,
        **fields,  # type: ignore[arg-type]
    )


def test_publish_batches_and_keys_events(client: Client) -> None:
    events = [rfi(i + 1, 9) for i in range(2300)]  # three calls: 1000, 1000, 300
    results = client.publish(events)
    assert len(results) == 2300
    keys = [r.idempotency_key for r in results]
    assert len(set(keys)) == 2300
    assert all(k for k in keys)
    assert not any(r.duplicate for r in results)
    # The keys make a repeat harmless: the same events come back as duplicates with their ids.
    again = client.publish([rfi(i + 1, 9, idempotency_key=k) for i, k in enumerate(keys[:1200])], batch_size=500)
    assert [r.event_id for r in again] == [r.event_id for r in results[:1200]]
    assert all(r.duplicate for r in again)


def test_published_event_reaches_the_endpoint(client: Client, project: str, sink: Sink) -> None:
    project_id = int(project.rsplit("/", 1)[1])
    hook = client.create_hook(project, sink.url(), "procore.v4")
    client.create_triggers(hook.name, [("RFIs", "update")])
    [published] = client.publish(
        [
            rfi(
                54321,
                project_id,
                timestamp=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
                metadata=EventMetadata(source_user_id=5447, source_application_id="procore"),
            )
        ]
    )
    assert published.deliveries == 1
    assert sink.wait_until(lambda: any(b"54321" in body for _, body in sink.received), 10)


def test_bad_event_names_the_field(client: Client) -> None:
    with pytest.raises(InvalidArgument) as err:
        client.publish([rfi(0, 9)])
    assert "events[0].resource_id" in err.value.message
    assert err.value.published == ()


def test_naive_times_are_refused_before_sending(client: Client) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        client.publish([rfi(1, 9, timestamp=datetime(2026, 11, 20, 9, 30))])


def test_async_client(real_server: ServerThread, project: str) -> None:
    async def main() -> None:
        async with AsyncClient(f"127.0.0.1:{real_server.port}") as client:
            hook = await client.create_hook(project, "http://127.0.0.1:9/in", "procore.v3", hook_id="async-one")
            assert (await client.get_hook(hook.name)) == replace(hook, signing_secret="")
            for _ in range(3):
                await client.create_hook(project, "http://127.0.0.1:9/in", "procore.v3")
            names = [h.name async for h in client.list_hooks(project, page_size=1)]
            assert len(names) == 4
            assert hook.name in names
            added = await client.create_triggers(hook.name, [("RFIs", "create")])
            assert [t.name async for t in client.list_triggers(hook.name)] == [added[0].name]
            updated = await client.update_hook(hook.name, HookChanges(status=HookStatus.PAUSED))
            assert updated.status is HookStatus.PAUSED
            formats = [f.name async for f in client.list_payload_formats()]
            assert "procore.v3" in formats
            resources = [r async for r in client.list_resources(Scope.COMPANY, payload_format="procore.v3")]
            assert resources
            results = await client.publish([rfi(i + 1, 10) for i in range(1500)])
            assert len({r.event_id for r in results}) == 1500
            rotated = await client.rotate_signing_secret(hook.name, timedelta(hours=2))
            assert rotated.signing_secret.startswith("whsec_")
            assert rotated.signing_secret != hook.signing_secret
            assert rotated.previous_secret_expire_time is not None
            assert (await client.get_hook(hook.name)).signing_secret == ""
            off = await client.update_hook(hook.name, HookChanges(signing_disabled=True))
            assert off.signing_disabled
            await client.delete_hook(hook.name)
            with pytest.raises(NotFound):
                await client.get_hook(hook.name)

    asyncio.run(main())
