"""The plugin module as tidings loads it: through the entry point and the hook specifications."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy

from tidings_procore import plugin
from tidings_server.plugins import spec
from tidings_server.plugins.spec import PayloadFormat, ResourceCatalog


def test_hookimpls_return_protocol_objects() -> None:
    formats = plugin.tidings_payload_formats()
    catalogs = plugin.tidings_resource_catalogs()
    assert formats
    assert all(isinstance(fmt, PayloadFormat) for fmt in formats)
    assert catalogs
    assert all(isinstance(catalog, ResourceCatalog) for catalog in catalogs)


def test_format_names_are_unique_and_documented() -> None:
    formats = plugin.tidings_payload_formats()
    names = [fmt.name for fmt in formats]
    assert names == ["procore.v2", "procore.v3", "procore.v4"]
    assert len(set(names)) == len(names)
    for fmt in formats:
        assert fmt.content_type == "application/json"
        assert fmt.description.endswith(".")
        assert fmt.description.count(". ") == 0


def test_module_registers_against_the_hook_specifications() -> None:
    pm = pluggy.PluginManager(spec.PROJECT)
    pm.add_hookspecs(spec)
    pm.register(plugin, name="procore")
    pm.check_pending()
    [formats] = pm.hook.tidings_payload_formats()
    [catalogs] = pm.hook.tidings_resource_catalogs()
    assert [fmt.name for fmt in formats] == ["procore.v2", "procore.v3", "procore.v4"]
    assert [catalog.name for catalog in catalogs] == ["procore"]


def test_entry_point_names_the_plugin_module() -> None:
    [entry_point] = [ep for ep in entry_points(group=spec.PROJECT) if ep.name == "procore"]
    assert entry_point.value == "tidings_procore.plugin"
    assert entry_point.load() is plugin
