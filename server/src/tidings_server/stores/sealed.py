"""The sealing decorator of the Store port: any backend keeps hooks' secrets sealed at rest.

``SealedStore`` wraps a store. Hooks going in are sealed (``domain.sealing``), hooks coming out
(get, list, update, claims) are opened; ``update_hook``'s change function sees plaintext. Every
other method passes through untouched: only those (and ``create_hooks``) carry a hook. A
template's hook definitions carry Authorization headers too: they are sealed the same way. So SQLite, memory and any
plugin backend (PostgreSQL) get secrets at rest from this one place, and a backend never sees a
secret in plaintext. A test checks that every port method with a hook in its signature is
wrapped here, so a new one cannot slip through sealed.

Opening costs about 10 µs per hook (three AES-GCM decryptions); claims reopen the same few hooks
batch after batch, so what they open is cached by the sealed values (docs/security.md).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

import trio

from tidings_server.domain.errors import NotFound
from tidings_server.domain.model import Hook, Template, Trigger
from tidings_server.domain.names import Parent
from tidings_server.domain.ports import Claim, Store
from tidings_server.domain.sealing import (
    Keyring,
    SealingError,
    is_sealed,
    open_hook,
    open_template,
    seal_hook,
    seal_template,
    stale_fields,
    stale_template_fields,
)
from tidings_server.keys import KeySource

log = logging.getLogger(__name__)

T = TypeVar("T")
U = TypeVar("U")
_CACHE_LIMIT: Final = 4096
_Sealed = tuple[str, str, str, str]  # hook name and its three secret fields as stored


def _sealed_fields(hook: Hook) -> _Sealed:
    return (hook.name, hook.authorization_header, hook.signing_secret, hook.previous_signing_secret)


class SealedStore:
    """A Store whose hooks' secrets are sealed under ``keys`` in the store it wraps."""

    def __init__(self, inner: Store, keys: KeySource) -> None:
        self.inner = inner
        self._keys = keys
        self._opened: dict[_Sealed, _Sealed] = {}

    @property
    def keyring(self) -> Keyring:
        return self._keys.keyring

    def __getattr__(self, name: str) -> Any:
        # Every port method without a hook in it (and a backend's own extras, such as SQLite's
        # publish_commits) is the inner store's. Only called for names not found on self; the
        # guard keeps a half-made copy (no ``inner`` yet) from recursing.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def reload_keys(self) -> bool:
        """Re-read the key file if it changed (a rotation added a key); True when it did."""
        return await self._reload()

    async def _reload(self) -> bool:
        """Re-read the key file if it changed (a rotation added a key); True when it did."""
        keyring = await trio.to_thread.run_sync(self._keys.reload)
        if keyring is None:
            return False
        self._opened.clear()
        log.info("secrets keyring reloaded", extra={"keys": list(keyring.ids)})
        return True

    def _open(self, hook: Hook) -> Hook:
        key = _sealed_fields(hook)
        opened = self._opened.get(key)
        if opened is None:
            plain = open_hook(self._keys.keyring, hook)
            opened = _sealed_fields(plain)
            if len(self._opened) >= _CACHE_LIMIT:
                self._opened.clear()
            self._opened[key] = opened
        _, authorization, secret, previous = opened
        if (authorization, secret, previous) == key[1:]:
            return hook
        return replace(
            hook, authorization_header=authorization, signing_secret=secret, previous_signing_secret=previous
        )

    async def _opening(self, read: Callable[[], Awaitable[T]], open_: Callable[[T], U]) -> U:
        """``open_(await read())``, reading again once after a key reload when a value is sealed
        under a key this keyring does not hold yet."""
        result = await read()
        try:
            return open_(result)
        except SealingError:
            if not await self._reload():
                raise
            return open_(await read())

    # -- the methods that carry hooks ------------------------------------------------------

    async def create_hook(self, hook: Hook) -> None:
        await self._reload()
        await self.inner.create_hook(seal_hook(self._keys.keyring, hook))

    async def create_hooks(self, hooks: Sequence[tuple[Hook, Sequence[Trigger]]]) -> None:
        await self._reload()
        keyring = self._keys.keyring
        await self.inner.create_hooks([(seal_hook(keyring, h), triggers) for h, triggers in hooks])

    # Templates hold Authorization headers for the hooks they make: sealed the same way.

    async def create_template(self, template: Template) -> None:
        await self._reload()
        await self.inner.create_template(seal_template(self._keys.keyring, template))

    async def get_template(self, name: str) -> Template:
        return await self._opening(
            lambda: self.inner.get_template(name), lambda t: open_template(self._keys.keyring, t)
        )

    async def list_templates(self, company_id: int, *, after: str | None, limit: int) -> list[Template]:
        return await self._opening(
            lambda: self.inner.list_templates(company_id, after=after, limit=limit),
            lambda found: [open_template(self._keys.keyring, t) for t in found],
        )

    async def list_all_templates(self, *, after: str | None, limit: int) -> list[Template]:
        return await self._opening(
            lambda: self.inner.list_all_templates(after=after, limit=limit),
            lambda found: [open_template(self._keys.keyring, t) for t in found],
        )

    async def update_template(self, name: str, change: Callable[[Template], Template]) -> Template:
        await self._reload()
        keyring = self._keys.keyring
        changed: list[Template] = []

        def sealed_change(current: Template) -> Template:
            changed[:] = [change(open_template(keyring, current))]
            return seal_template(keyring, changed[0])

        await self.inner.update_template(name, sealed_change)
        return changed[0]

    def _open_all(self, hooks: list[Hook]) -> list[Hook]:
        return [self._open(h) for h in hooks]

    async def get_hook(self, name: str) -> Hook:
        return await self._opening(lambda: self.inner.get_hook(name), self._open)

    async def list_hooks(self, parent: Parent, *, after: str | None, limit: int) -> list[Hook]:
        return await self._opening(lambda: self.inner.list_hooks(parent, after=after, limit=limit), self._open_all)

    async def list_all_hooks(self, *, after: str | None, limit: int) -> list[Hook]:
        return await self._opening(lambda: self.inner.list_all_hooks(after=after, limit=limit), self._open_all)

    async def update_hook(self, name: str, change: Callable[[Hook], Hook]) -> Hook:
        await self._reload()
        keyring = self._keys.keyring

        changed: list[Hook] = []

        def sealed_change(current: Hook) -> Hook:
            # Runs where the store runs it (SQLite: its worker thread, inside the transaction).
            changed[:] = [change(open_hook(keyring, current))]
            return seal_hook(keyring, changed[0])

        try:
            await self.inner.update_hook(name, sealed_change)
        except SealingError:  # the stored hook is under a key added since: learn it, try again
            if not await self._reload():
                raise
            return await self.update_hook(name, change)
        return changed[0]

    async def claim_due(
        self, now: datetime, *, limit: int, lease_until: datetime, owner: str, finished: Collection[str] = ()
    ) -> list[Claim]:
        claims = await self.inner.claim_due(now, limit=limit, lease_until=lease_until, owner=owner, finished=finished)
        try:
            return self._open_claims(claims)
        except SealingError:
            if await self._reload():
                return self._open_claims(claims)
            # Start-up checked every hook opens, so this one was altered in the store since:
            # its deliveries wait (leased) rather than go out with a broken header.
            log.error("claimed deliveries of a hook whose secrets do not open are left for later")
            opened: list[Claim] = []
            for c in claims:
                try:
                    opened.append(replace(c, hook=self._open(c.hook)))
                except SealingError as exc:
                    log.error("secrets do not open", extra={"hook": c.hook.name, "error": str(exc)})
            return opened

    def _open_claims(self, claims: list[Claim]) -> list[Claim]:
        """``claims`` with their hooks opened: each hook once, however many of its deliveries
        a claim holds (on the hot path, a ``replace`` per claim cost more than the opening)."""
        opened: dict[str, Hook] = {}
        out: list[Claim] = []
        for c in claims:
            hook = opened.get(c.hook.name)  # one claim reads each hook's row once
            if hook is None:
                hook = opened[c.hook.name] = self._open(c.hook)
            out.append(Claim(c.delivery, c.event, hook, c.interrupted))
        return out


@dataclass(frozen=True, slots=True)
class Audit:
    """What a walk over every stored hook and template found about their secrets."""

    hooks: int = 0
    current: int = 0  # hooks whose every secret is sealed under the newest key (or that have none)
    plaintext: int = 0  # hooks with a secret stored unsealed (from before sealing)
    stale: int = 0  # hooks with a secret sealed under a key other than the newest (known or not)
    unopenable: tuple[str, ...] = ()  # "hook: why", for secrets no key of the keyring opens
    # Templates' hook definitions hold Authorization headers, counted the same way.
    templates: int = 0
    templates_current: int = 0
    templates_plaintext: int = 0
    templates_stale: int = 0
    templates_unopenable: tuple[str, ...] = ()

    @property
    def not_opening(self) -> tuple[str, ...]:
        """Every secret, of hooks and templates, that no key of the keyring opens."""
        return self.unopenable + self.templates_unopenable

    @property
    def left(self) -> int:
        """Hooks and templates with a secret not yet under the newest key."""
        return self.hooks - self.current + self.templates - self.templates_current


def _kinds(values: list[str]) -> tuple[bool, bool]:
    """Whether ``values`` (secrets not under the newest key) hold plaintext, and sealed ones."""
    return any(v and not is_sealed(v) for v in values), any(is_sealed(v) for v in values)


async def audit(store: SealedStore, *, batch: int = 500) -> Audit:
    """Walk every hook and template as stored and check each secret against the keyring (about
    10 µs a hook): a rotation that skipped templates would leave them sealed under a retired key."""
    keyring = store.keyring
    hooks = current = plaintext = stale = 0
    unopenable: list[str] = []
    templates_unopenable: list[str] = []
    after: str | None = None
    while page := await store.inner.list_all_hooks(after=after, limit=batch):
        for hook in page:
            hooks += 1
            fields = stale_fields(keyring, hook)
            current += not fields
            plain, sealed = _kinds(fields)
            plaintext += plain
            stale += sealed
            try:
                open_hook(keyring, hook)
            except SealingError as exc:
                unopenable.append(str(exc))
        after = page[-1].name
    templates = t_current = t_plaintext = t_stale = 0
    after = None
    while found := await store.inner.list_all_templates(after=after, limit=batch):
        for template in found:
            templates += 1
            fields = stale_template_fields(keyring, template)
            t_current += not fields
            plain, sealed = _kinds(fields)
            t_plaintext += plain
            t_stale += sealed
            try:
                open_template(keyring, template)
            except SealingError as exc:
                templates_unopenable.append(str(exc))
        after = found[-1].name
    return Audit(
        hooks,
        current,
        plaintext,
        stale,
        tuple(unopenable),
        templates,
        t_current,
        t_plaintext,
        t_stale,
        tuple(templates_unopenable),
    )


async def reseal(store: SealedStore, *, batch: int = 100, pause: float = 0.0) -> int:
    """Re-seal every secret not sealed under the newest key (plaintext from before sealing too),
    page by page, one short transaction per hook, so a server using the store meanwhile is
    never held up; returns how many hooks were re-sealed. The hooks are otherwise unchanged."""
    keyring = store.keyring
    return await _reseal_each(
        store.inner.list_all_hooks,
        lambda hook: bool(stale_fields(keyring, hook)),
        lambda hook: store.update_hook(hook.name, lambda h: h),
        batch=batch,
        pause=pause,
    )


async def reseal_templates(store: SealedStore, *, batch: int = 100, pause: float = 0.0) -> int:
    """``reseal`` for templates: each definition's Authorization header not under the newest
    key is re-sealed, one transaction per template, nothing else of it changed (not its
    revision); returns how many templates were re-sealed."""
    keyring = store.keyring
    return await _reseal_each(
        store.inner.list_all_templates,
        lambda template: bool(stale_template_fields(keyring, template)),
        lambda template: store.update_template(template.name, lambda t: t),
        batch=batch,
        pause=pause,
    )


class _Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


async def _reseal_each(
    pages: Callable[..., Awaitable[Sequence[N]]],
    stale: Callable[[N], bool],
    rewrite: Callable[[N], Awaitable[object]],
    *,
    batch: int,
    pause: float,
) -> int:
    """Walk ``pages`` (``after=``, ``limit=``) by name, rewriting each stale item (one write
    each, which seals it afresh); an item deleted meanwhile is passed over. Returns how many
    were rewritten."""
    done = 0
    after: str | None = None
    while page := await pages(after=after, limit=batch):
        for item in page:
            if not stale(item):
                continue
            try:
                await rewrite(item)
            except NotFound:  # deleted meanwhile
                continue
            done += 1
        after = page[-1].name
        if pause:
            await trio.sleep(pause)
    return done


WALKS: Final = 3
"""At most this many walks of hooks and templates make one rotation."""


async def reseal_all(store: SealedStore, *, batch: int = 100) -> tuple[int, int]:
    """``reseal`` then ``reseal_templates``, walked again until a walk finds nothing left (at
    most ``WALKS`` times): a write sealed under the old key by a process that had not read the
    new file yet is caught by the next walk. Templates hold Authorization headers too: left
    under the old key, retiring it would lose them. Returns (hooks, templates) re-sealed."""
    hooks = templates = 0
    for _ in range(WALKS):
        done = await reseal(store, batch=batch)
        done_templates = await reseal_templates(store, batch=batch)
        hooks += done
        templates += done_templates
        if not done and not done_templates:
            break
    return hooks, templates


class Resealing:
    """A running server's own rotation: on ``ask`` (SIGHUP) it re-reads the key file and, in
    the background, re-seals whatever is not under the newest key.

    A SQLite file has one process at a time, so ``secrets rotate-key`` cannot walk it while the
    server runs: it writes the key file, signals the owner and watches, read-only, until every
    secret is under the new key. Asks arriving during a walk make one more walk after it.
    """

    def __init__(self, store: SealedStore, *, batch: int = 100) -> None:
        self.store = store
        self.batch = batch
        self.walks = 0  # walks finished, for tests and logs
        self._asks, self._asked = trio.open_memory_channel[None](1)

    def ask(self) -> None:
        """Have the key file read again and the store re-sealed; returns at once."""
        with contextlib.suppress(trio.WouldBlock):  # a walk is asked for already: it reads the newest file
            self._asks.send_nowait(None)

    async def run(self) -> None:
        """Walk whenever asked, until cancelled; a failed walk is logged and the next ask retries."""
        async for _ in self._asked:
            try:
                await self._walk()
            except Exception as exc:
                log.error("re-encrypting secrets failed; send SIGHUP again to retry", extra={"error": str(exc)})

    async def _walk(self) -> None:
        reloaded = await self.store.reload_keys()
        primary = self.store.keyring.primary_id
        if primary is None:  # --plaintext-secrets: nothing to seal under
            log.info("no secrets key to re-encrypt under (plaintext secrets)")
            return
        log.info("re-encrypting secrets under the newest key", extra={"key": primary, "keyring_changed": reloaded})
        start = trio.current_time()
        hooks, templates = await reseal_all(self.store, batch=self.batch)
        # A file store (SQLite) copies the re-sealed pages over the old ones and empties its
        # log now: plaintext from before encryption at rest would otherwise linger in them.
        checkpoint = getattr(self.store.inner, "checkpoint", None)
        if (hooks or templates) and checkpoint is not None and not await checkpoint():
            log.warning("a reader kept the store's log from being emptied: old pages stay until the next checkpoint")
        self.walks += 1
        log.info(
            "secrets re-encrypted under the newest key",
            extra={
                "key": primary,
                "hooks": hooks,
                "templates": templates,
                "seconds": round(trio.current_time() - start, 3),
            },
        )
