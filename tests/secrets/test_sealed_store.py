"""SealedStore: the whole store contract holds through it, and the backend below never holds a
secret in plaintext."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from tests.stores.conftest import BACKENDS, SHARED_BACKENDS, BackendFactory
from tidings_server.domain import ports, sealing
from tidings_server.domain.model import Hook
from tidings_server.domain.names import Parent
from tidings_server.domain.ports import Store
from tidings_server.domain.sealing import Keyring, SealingError, key_id, new_key
from tidings_server.domain.signing import new_secret
from tidings_server.keys import KeySource, add_key, init_key, read_keyring
from tidings_server.stores.memory import MemoryStore
from tidings_server.stores.sealed import SealedStore, audit, reseal
from tidings_server.testing.stores import StoreContract
from tidings_server.testing.stores.samples import T0, T1, make_event, make_hook, make_trigger

HOOK = "companies/1/projects/2/hooks/h"


class TestSealedStores(StoreContract):
    """Every backend one process holds, wrapped: what went in comes out, so callers cannot tell it is there."""

    @pytest.fixture(params=[p for p in BACKENDS if p.values[0] not in SHARED_BACKENDS])
    async def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
        async with _sealed(request.param, tmp_path) as sealed:
            yield sealed


class TestSealedSharedStores(StoreContract):
    """The backends several processes share, wrapped; their notices reach every process."""

    notices_across_processes = True

    @pytest.fixture(params=[p for p in BACKENDS if p.values[0] in SHARED_BACKENDS])
    async def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
        async with _sealed(request.param, tmp_path) as sealed:
            yield sealed


@asynccontextmanager
async def _sealed(factory: BackendFactory, tmp_path: Path) -> AsyncIterator[Store]:
    with factory(tmp_path) as (backend, url):
        async with backend.open(url) as opened:
            yield SealedStore(opened, KeySource(Keyring([new_key()])))


def _carries_hooks(method: object) -> bool:
    hints = typing.get_type_hints(method, vars(ports))
    return any(h in (Hook, ports.Claim) or Hook in typing.get_args(h) or ports.Claim in typing.get_args(h)
               for h in hints.values())  # fmt: skip


def test_every_port_method_that_carries_a_hook_is_sealed_or_opened_by_the_decorator() -> None:
    """Any other method passes through; a new port method with a hook in it must be wrapped."""
    carrying = {name for name, m in inspect.getmembers(Store, inspect.isfunction) if _carries_hooks(m)}
    assert carrying == {"create_hook", "get_hook", "list_hooks", "list_all_hooks", "update_hook", "claim_due"}
    wrapped = {name for name, m in vars(SealedStore).items() if inspect.iscoroutinefunction(m)}
    assert carrying <= wrapped
    # Batches of hooks and templates (whose definitions hold Authorization headers) too.
    templates = {"create_template", "get_template", "list_templates", "list_all_templates", "update_template"}
    assert {"create_hooks", *templates} <= wrapped


@pytest.fixture
async def stores() -> tuple[MemoryStore, SealedStore]:
    inner = MemoryStore()
    return inner, SealedStore(inner, KeySource(Keyring([new_key()])))


def _plain(hook: Hook) -> list[str]:
    return [v for v in (hook.authorization_header, hook.signing_secret, hook.previous_signing_secret) if v]


async def test_the_backend_holds_only_sealed_secrets_and_callers_only_plaintext(
    stores: tuple[MemoryStore, SealedStore],
) -> None:
    inner, store = stores
    hook = make_hook(HOOK, signing_secret=new_secret())
    await store.create_hook(hook)
    stored = await inner.get_hook(HOOK)
    assert all(sealing.is_sealed(v) for v in _plain(stored))
    assert not [secret for secret in _plain(hook) if secret in repr(vars_of(stored))]
    assert await store.get_hook(HOOK) == hook

    seen: list[Hook] = []

    def rotate(current: Hook) -> Hook:
        seen.append(current)
        return dataclasses.replace(current, signing_secret=new_secret(), previous_signing_secret=current.signing_secret)

    rotated = await store.update_hook(HOOK, rotate)
    assert seen == [hook]  # the change function sees plaintext
    assert rotated.previous_signing_secret == hook.signing_secret
    assert await store.get_hook(HOOK) == rotated
    assert all(sealing.is_sealed(v) for v in _plain(await inner.get_hook(HOOK)))
    assert await store.list_hooks(Parent(1, 2), after=None, limit=10) == [rotated]
    assert await store.list_all_hooks(after=None, limit=10) == [rotated]


async def test_claims_carry_the_opened_hook(stores: tuple[MemoryStore, SealedStore]) -> None:
    _, store = stores
    hook = make_hook(HOOK, signing_secret=new_secret())
    await store.create_hook(hook)
    await store.add_triggers(HOOK, [make_trigger(HOOK)])
    await store.publish_events([make_event(1), make_event(2, resource_id=101)], T0)
    claims = await store.claim_due(T1, limit=10, lease_until=T1 + timedelta(seconds=30), owner="node-1")
    assert [c.hook for c in claims] == [hook, hook]


async def test_a_key_added_to_the_file_is_learnt_when_first_met(tmp_path: Path) -> None:
    """A second process (``secrets rotate-key``) seals under a new key; this one reads the file
    again when it meets that key, and seals under it from its next write."""
    path = tmp_path / "keyring"
    init_key(path)
    inner = MemoryStore()
    running = SealedStore(inner, KeySource.from_file(path))
    hook = make_hook(HOOK, signing_secret=new_secret())
    await running.create_hook(hook)
    old_id = running.keyring.primary_id

    new_id = add_key(path)
    rotating = SealedStore(inner, KeySource.from_file(path))
    assert await reseal(rotating) == 1
    assert {sealing.sealed_key_id(v) for v in _plain(await inner.get_hook(HOOK))} == {new_id}

    assert await running.get_hook(HOOK) == hook  # unknown key met: the file is read again
    assert running.keyring.ids == (new_id, old_id)
    other = make_hook("companies/1/projects/2/hooks/other")
    await running.create_hook(other)
    assert sealing.sealed_key_id((await inner.get_hook(other.name)).authorization_header) == new_id


async def test_a_write_after_the_file_changed_seals_under_the_new_key(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    init_key(path)
    inner = MemoryStore()
    running = SealedStore(inner, KeySource.from_file(path))
    new_id = add_key(path)
    await running.create_hook(make_hook(HOOK))
    assert sealing.sealed_key_id((await inner.get_hook(HOOK)).authorization_header) == new_id


async def test_a_hook_altered_in_the_store_keeps_its_deliveries_back(
    stores: tuple[MemoryStore, SealedStore], caplog: pytest.LogCaptureFixture
) -> None:
    """A sealed value moved from another hook does not open: that hook's claims are left leased
    (and logged) rather than sent with a broken header; other hooks' claims go out."""
    inner, store = stores
    other = "companies/1/projects/2/hooks/other"
    for name in (HOOK, other):
        await store.create_hook(make_hook(name))
        await store.add_triggers(name, [make_trigger(name)])
    moved = (await inner.get_hook(other)).authorization_header
    await inner.update_hook(HOOK, lambda h: dataclasses.replace(h, authorization_header=moved))
    await store.publish_events([make_event(1)], T0)
    claims = await store.claim_due(T1, limit=10, lease_until=T1 + timedelta(seconds=30), owner="node-1")
    assert [c.hook.name for c in claims] == [other]
    assert claims[0].hook == make_hook(other)
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"][-1] == "secrets do not open"
    with pytest.raises(SealingError, match=f"hook {HOOK}, authorization_header: the sealed value does not open"):
        await store.get_hook(HOOK)


async def test_audit_and_reseal_migrate_plaintext_from_before(stores: tuple[MemoryStore, SealedStore]) -> None:
    inner, store = stores
    legacy = [make_hook(f"companies/1/hooks/h{i}", signing_secret=new_secret()) for i in range(5)]
    for hook in legacy:
        await inner.create_hook(hook)  # as a store written before sealing holds them
    await inner.create_hook(make_hook("companies/1/hooks/none", authorization_header=""))
    found = await audit(store)
    assert (found.hooks, found.current, found.plaintext, found.stale, found.unopenable) == (6, 1, 5, 0, ())
    assert [await store.get_hook(h.name) for h in legacy] == legacy  # plaintext reads as it is
    assert await reseal(store, batch=2) == 5
    assert await audit(store) == type(found)(hooks=6, current=6)
    for hook in legacy:
        assert all(sealing.is_sealed(v) for v in _plain(await inner.get_hook(hook.name)))
        assert await store.get_hook(hook.name) == hook  # unchanged, update_time included


async def test_a_secret_no_key_opens_is_reported_by_name(stores: tuple[MemoryStore, SealedStore]) -> None:
    inner, store = stores
    stranger = Keyring([new_key()])
    await inner.create_hook(sealing.seal_hook(stranger, make_hook(HOOK)))
    found = await audit(store)
    assert found.unopenable == (
        f"hook {HOOK}, authorization_header: sealed under key {stranger.primary_id}, which the keyring does not hold",
    )
    with pytest.raises(SealingError):
        await store.get_hook(HOOK)


async def test_key_files_hold_newest_first(tmp_path: Path) -> None:
    path = tmp_path / "keyring"
    first = init_key(path)
    second = add_key(path)
    assert read_keyring(path).ids == (second, first)
    with pytest.raises(FileExistsError):
        init_key(path)
    assert key_id(read_keyring(path).keys[1]) == first


def vars_of(hook: Hook) -> dict[str, object]:
    return {f: getattr(hook, f) for f in hook.__dataclass_fields__}
