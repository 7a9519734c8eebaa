"""The in-memory store (``memory:``): dictionaries that vanish with the process, for tests and trials.

It keeps the Store contract exactly as the persistent backends do, so code tested against it
behaves the same on SQLite: every method checks everything before it changes anything, and
every method is a trio checkpoint, so cancellation lands before a change, never inside one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlsplit

import trio

from tidings_server.domain.errors import AlreadyExists, NotFound
from tidings_server.domain.model import Hook, Trigger
from tidings_server.domain.names import Parent
from tidings_server.plugins.spec import StorageBackend, hookimpl

_Named = TypeVar("_Named", Hook, Trigger)


def _check_time(what: str, value: datetime) -> None:
    # A naive datetime has no instant; SQLite could only guess one, so no backend accepts it.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


def _page(items: Iterable[_Named], after: str | None, limit: int) -> list[_Named]:
    chosen = sorted((i for i in items if after is None or i.name > after), key=lambda i: i.name)
    return chosen[:limit]


def _in_parent(hook: Hook, parent: Parent) -> bool:
    if hook.company_id != parent.company_id:
        return False
    if parent.any_project:
        return hook.project_id is not None
    return hook.project_id == parent.project_id


class MemoryStore:
    """A Store held in dictionaries: hooks by name, and each hook's triggers by name."""

    def __init__(self) -> None:
        self._hooks: dict[str, Hook] = {}
        self._triggers: dict[str, dict[str, Trigger]] = {}

    def _hook(self, name: str) -> Hook:
        hook = self._hooks.get(name)
        if hook is None:
            raise NotFound(f"hook {name} does not exist")
        return hook

    async def create_hook(self, hook: Hook) -> None:
        await trio.lowlevel.checkpoint()
        _check_time("create_time", hook.create_time)
        _check_time("update_time", hook.update_time)
        if hook.name in self._hooks:
            raise AlreadyExists(f"hook {hook.name} already exists")
        self._hooks[hook.name] = hook
        self._triggers[hook.name] = {}

    async def get_hook(self, name: str) -> Hook:
        await trio.lowlevel.checkpoint()
        return self._hook(name)

    async def list_hooks(self, parent: Parent, *, after: str | None, limit: int) -> list[Hook]:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        return _page((h for h in self._hooks.values() if _in_parent(h, parent)), after, limit)

    async def update_hook(self, name: str, change: Callable[[Hook], Hook]) -> Hook:
        await trio.lowlevel.checkpoint()
        current = self._hook(name)
        new = change(current)
        if (new.name, new.company_id, new.project_id) != (current.name, current.company_id, current.project_id):
            raise ValueError(f"change() must not rename hook {name} or move it to another parent")
        _check_time("create_time", new.create_time)
        _check_time("update_time", new.update_time)
        self._hooks[name] = new
        return new

    async def delete_hook(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        self._hook(name)
        del self._hooks[name]
        del self._triggers[name]

    async def add_triggers(self, hook_name: str, triggers: Sequence[Trigger]) -> list[Trigger]:
        await trio.lowlevel.checkpoint()
        self._hook(hook_name)
        for trigger in triggers:
            if trigger.hook_name != hook_name:
                raise ValueError(f"trigger {trigger.name} does not belong to hook {hook_name}")
            _check_time("create_time", trigger.create_time)
        stored = self._triggers[hook_name]
        return [stored.setdefault(t.name, t) for t in triggers]

    async def delete_triggers(self, hook_name: str, names: Sequence[str], *, allow_missing: bool) -> None:
        await trio.lowlevel.checkpoint()
        self._hook(hook_name)
        stored = self._triggers[hook_name]
        if not allow_missing:
            for name in names:
                if name not in stored:
                    raise NotFound(f"trigger {name} does not exist")
        for name in names:
            stored.pop(name, None)

    async def list_triggers(self, hook_name: str, *, after: str | None, limit: int) -> list[Trigger]:
        await trio.lowlevel.checkpoint()
        _check_limit(limit)
        self._hook(hook_name)
        return _page(self._triggers[hook_name].values(), after, limit)


class MemoryBackend:
    """Opens an empty MemoryStore for the URL ``memory:``; each open starts from nothing."""

    scheme = "memory"
    description = "in-process dictionaries; everything is lost when the server stops (memory:)"

    @asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[MemoryStore]:
        parts = urlsplit(url)
        if parts.scheme.lower() != self.scheme or url[len(parts.scheme) :] != ":":
            raise ValueError(f"invalid memory store URL {url!r}; expected 'memory:'")
        yield MemoryStore()


@hookimpl
def tidings_storage_backends() -> list[StorageBackend]:
    return [MemoryBackend()]
