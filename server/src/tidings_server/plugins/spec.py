"""Every hook specification tidings offers to plugins, and the interfaces they return.

A plugin is a module (or object) with functions marked ``@hookimpl`` and published in the
``tidings`` entry-point group of its distribution::

    [project.entry-points.tidings]
    my_formats = "my_package.plugin"

Built-in plugins use the same entry-point group; nothing is registered any other way.
Each ``tidings_*`` hook returns a list and every plugin's list is merged, so several
plugins can contribute formats, stores and catalogs side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pluggy

from tidings_server.domain.model import Event, ResourceType

if TYPE_CHECKING:
    from tidings_server.stores.protocol import Store

PROJECT = "tidings"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a payload format may know about the hook it renders for."""

    hook_name: str
    payload_format: str


@dataclass(frozen=True, slots=True)
class RenderedPayload:
    """A rendered request: the body and the headers the format wants (Content-Type at least)."""

    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class PayloadFormat(Protocol):
    """Turns an event into the body (and format-specific headers) of one HTTP POST.

    ``name`` is what hooks select (``vendor.version``, e.g. ``procore.v4``); it must be unique
    across all loaded plugins. ``render`` must be deterministic for the same event and context,
    must not do I/O and must return ``bytes``.
    """

    name: str
    description: str
    content_type: str

    def render(self, event: Event, context: RenderContext) -> RenderedPayload: ...


@runtime_checkable
class StorageBackend(Protocol):
    """Opens a store for URLs of one scheme (``sqlite``, ``memory``, ``postgresql``).

    ``open(url)`` returns an async context manager; the store is usable inside it and closed
    on exit. The URL is the one given to ``tidings-server serve --store``.
    """

    scheme: str
    description: str

    def open(self, url: str) -> AbstractAsyncContextManager[Store]: ...


@runtime_checkable
class ResourceCatalog(Protocol):
    """Lists the resources events can be about, per scope, with their event types.

    Triggers and published events are validated against the union of all catalogs.
    """

    name: str

    def resources(self) -> Iterable[ResourceType]: ...


@hookspec
def tidings_payload_formats() -> list[PayloadFormat]:  # type: ignore[empty-body]
    """Return the payload formats this plugin provides.

    Called once at start-up. Results of all plugins are concatenated; two formats with the same
    ``name`` are a start-up error naming both providers.
    """


@hookspec
def tidings_storage_backends() -> list[StorageBackend]:  # type: ignore[empty-body]
    """Return the storage backends this plugin provides, one per URL scheme.

    Called once at start-up. Results are concatenated; two backends for one scheme are a
    start-up error. The backend whose ``scheme`` matches the configured store URL is opened.
    """


@hookspec
def tidings_resource_catalogs() -> list[ResourceCatalog]:  # type: ignore[empty-body]
    """Return the resource catalogs this plugin provides.

    Called once at start-up. Catalogs are merged: a resource listed by several catalogs for the
    same scope supports the union of their event types.
    """
