"""The plugin facade: loads the ``tidings`` entry points and hands the core typed registries.

Core code talks to ``Plugins``, never to ``pm.hook``: what a hook returns is checked here once,
at start-up, so a broken plugin is reported by name instead of failing later mid-delivery.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import Distribution, entry_points
from typing import Any

import pluggy

from tidings_server.domain import names
from tidings_server.domain.model import ResourceType, Scope
from tidings_server.plugins import spec
from tidings_server.plugins.spec import PayloadFormat, ResourceCatalog, StorageBackend

log = logging.getLogger(__name__)


IN_PROCESS = "(in process)"  # the distribution of plugin objects registered by the embedding code


class PluginError(Exception):
    """A plugin is broken or two plugins conflict; the message names them."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A loaded (or failed) plugin and the distribution that ships it."""

    name: str
    distribution: str
    version: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Provided:
    """Something a plugin provides, with where it came from (shown by ListPayloadFormats)."""

    plugin: str
    distribution: str
    version: str


@dataclass(slots=True)
class Catalog:
    """The union of every loaded resource catalog, indexed by (scope, resource name)."""

    resources: dict[tuple[Scope, str], ResourceType] = field(default_factory=dict)
    providers: dict[tuple[Scope, str], str] = field(default_factory=dict)

    def add(self, catalog_name: str, resource: ResourceType) -> None:
        key = (resource.scope, resource.name)
        known = self.resources.get(key)
        if known is None:
            self.resources[key] = resource
            self.providers[key] = catalog_name
            return
        formats = (
            None
            if known.payload_formats is None or resource.payload_formats is None
            else known.payload_formats | resource.payload_formats
        )
        self.resources[key] = ResourceType(
            resource.name, resource.scope, known.event_types | resource.event_types, formats
        )

    def get(self, scope: Scope, name: str) -> ResourceType | None:
        return self.resources.get((scope, name))

    def list(self, scope: Scope, payload_format: str | None = None) -> list[ResourceType]:
        return sorted(
            (
                r
                for (s, _), r in self.resources.items()
                if s is scope
                and (payload_format is None or r.payload_formats is None or payload_format in r.payload_formats)
            ),
            key=lambda r: r.name,
        )


_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _check_resource(plugin: str, resource: ResourceType) -> None:
    """A catalog entry must make well-formed trigger names (``{slug}.{event_type}``)."""
    slug = names.slug(resource.name)
    if not resource.name or not slug or len(slug) > 127:
        raise PluginError(f"plugin {plugin}: resource name {resource.name!r} cannot name triggers")
    for event_type in resource.event_types:
        if not _EVENT_TYPE.fullmatch(event_type):
            raise PluginError(f"plugin {plugin}: {resource.name!r} has an invalid event type {event_type!r}")


def _check_trigger_ids(catalog: Catalog) -> None:
    """Two resources whose names make the same trigger id could not be told apart."""
    seen: dict[tuple[Scope, str], str] = {}
    for (scope, name), _ in catalog.resources.items():
        other = seen.setdefault((scope, names.slug(name)), name)
        if other != name:
            raise PluginError(f"resources {other!r} and {name!r} would share trigger names; rename one")


class Plugins:
    """The loaded plugins: payload formats by name, storage backends by scheme, one catalog."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo]) -> None:
        self._pm = pm
        self.infos = infos
        self.payload_formats: dict[str, PayloadFormat] = {}
        self.format_origin: dict[str, Provided] = {}
        self.storage_backends: dict[str, StorageBackend] = {}
        self.backend_origin: dict[str, Provided] = {}
        self.catalog = Catalog()
        self._collect()

    @classmethod
    def load(
        cls, *, blocked: Iterable[str] = (), extra: Iterable[object] = (), only: Iterable[str] | None = None
    ) -> Plugins:
        """Load every ``tidings`` entry point except ``blocked`` ones, plus ``extra`` plugin objects;
        with ``only``, just those entry points (a render worker loads one distribution's).

        An entry point that fails to import is recorded in ``infos`` with its error, not raised:
        the server decides whether it can run without it.
        """
        pm = pluggy.PluginManager(spec.PROJECT)
        pm.add_hookspecs(spec)
        blocked = set(blocked)
        wanted = None if only is None else set(only)
        infos: list[PluginInfo] = []
        for ep in sorted(entry_points(group=spec.PROJECT), key=lambda e: e.name):
            if wanted is not None and ep.name not in wanted:
                continue
            dist: Distribution | None = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            dist_version = dist.version if dist is not None else "?"
            if ep.name in blocked:
                pm.set_blocked(ep.name)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import-time failure of foreign code
                log.error("plugin %s from %s failed to load: %r", ep.name, dist_name, exc)
                infos.append(PluginInfo(ep.name, dist_name, dist_version, error=repr(exc)))
                continue
            pm.register(plugin, name=ep.name)
            infos.append(PluginInfo(ep.name, dist_name, dist_version))
        for i, plugin in enumerate(extra):
            name = getattr(plugin, "__name__", None) or f"extra-{i}"
            pm.register(plugin, name=name)
            infos.append(PluginInfo(name, IN_PROCESS, "-"))
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from exc
        return cls(pm, infos)

    def _results(self, hook_name: str) -> list[tuple[Provided, list[Any]]]:
        """Call one hook plugin by plugin, so each result is attributed to its provider."""
        by_name = {i.name: i for i in self.infos}
        out: list[tuple[Provided, list[Any]]] = []
        caller = getattr(self._pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order
            info = by_name.get(impl.plugin_name, PluginInfo(impl.plugin_name, "?", "?"))
            try:
                result = impl.function()
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name}: {hook_name}() raised {exc!r}") from exc
            if not isinstance(result, list):
                raise PluginError(f"plugin {impl.plugin_name}: {hook_name}() must return a list")
            out.append((Provided(impl.plugin_name, info.distribution, info.version), result))
        return out

    def _collect(self) -> None:
        for origin, formats in self._results("tidings_payload_formats"):
            for fmt in formats:
                if not isinstance(fmt, PayloadFormat):
                    raise PluginError(f"plugin {origin.plugin}: {fmt!r} is not a PayloadFormat")
                if fmt.name in self.payload_formats:
                    other = self.format_origin[fmt.name].plugin
                    raise PluginError(f"payload format {fmt.name!r} is provided by both {other} and {origin.plugin}")
                self.payload_formats[fmt.name] = fmt
                self.format_origin[fmt.name] = origin
        for origin, backends in self._results("tidings_storage_backends"):
            for backend in backends:
                if not isinstance(backend, StorageBackend):
                    raise PluginError(f"plugin {origin.plugin}: {backend!r} is not a StorageBackend")
                if backend.scheme in self.storage_backends:
                    other = self.backend_origin[backend.scheme].plugin
                    raise PluginError(
                        f"storage scheme {backend.scheme!r} is provided by both {other} and {origin.plugin}"
                    )
                self.storage_backends[backend.scheme] = backend
                self.backend_origin[backend.scheme] = origin
        for origin, catalogs in self._results("tidings_resource_catalogs"):
            for catalog in catalogs:
                if not isinstance(catalog, ResourceCatalog):
                    raise PluginError(f"plugin {origin.plugin}: {catalog!r} is not a ResourceCatalog")
                for resource in catalog.resources():
                    _check_resource(origin.plugin, resource)
                    self.catalog.add(catalog.name, resource)
        _check_trigger_ids(self.catalog)

    def storage_backend_for(self, url: str) -> StorageBackend:
        """The backend for a store URL, chosen by its scheme (``sqlite:///…`` → ``sqlite``)."""
        scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
        backend = self.storage_backends.get(scheme)
        if backend is None:
            known = ", ".join(sorted(self.storage_backends)) or "none"
            raise PluginError(f"no storage backend for {scheme!r} URLs; loaded: {known}")
        return backend
