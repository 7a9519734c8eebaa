"""The plugin manager: built-ins load through entry points, and broken plugins are named."""

from __future__ import annotations

import inspect
import types
from pathlib import Path

import pytest

from tidings_server.domain.model import Event, ResourceType, Scope
from tidings_server.plugins import spec
from tidings_server.plugins.manager import PluginError, Plugins
from tidings_server.plugins.spec import RenderContext, RenderedPayload, hookimpl

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


class EchoFormat:
    name = "test.echo"
    description = "the event id as the body"
    content_type = "text/plain"

    def render(self, event: Event, context: RenderContext) -> RenderedPayload:
        return RenderedPayload({"Content-Type": self.content_type}, event.id.encode())


def plugin_module(name: str, **hooks: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, fn)
    return module


def test_builtins_load_through_entry_points() -> None:
    plugins = Plugins.load()
    by_name = {i.name: i for i in plugins.infos}
    assert by_name["sqlite"].distribution == "tidings-server"
    assert by_name["memory"].distribution == "tidings-server"
    assert by_name["procore"].distribution == "tidings-procore"
    assert {"procore.v2", "procore.v3", "procore.v4"} <= set(plugins.payload_formats)
    assert {"sqlite", "memory"} <= set(plugins.storage_backends)
    assert plugins.format_origin["procore.v4"].distribution == "tidings-procore"
    assert plugins.storage_backend_for("sqlite:////tmp/x.db").scheme == "sqlite"


def test_blocked_plugin_is_not_loaded() -> None:
    plugins = Plugins.load(blocked={"procore"})
    assert not any(name.startswith("procore.") for name in plugins.payload_formats)
    assert plugins.catalog.get(Scope.PROJECT, "RFIs") is None


def test_extra_plugin_contributes_and_catalogs_merge() -> None:
    @hookimpl
    def tidings_payload_formats() -> list[object]:
        return [EchoFormat()]

    class Extra:
        name = "extra"

        def resources(self) -> list[ResourceType]:
            return [ResourceType("RFIs", Scope.PROJECT, frozenset({"approve"}))]

    @hookimpl
    def tidings_resource_catalogs() -> list[object]:
        return [Extra()]

    module = plugin_module(
        "extra", tidings_payload_formats=tidings_payload_formats, tidings_resource_catalogs=tidings_resource_catalogs
    )
    plugins = Plugins.load(extra=[module])
    assert plugins.payload_formats["test.echo"].content_type == "text/plain"
    rfis = plugins.catalog.get(Scope.PROJECT, "RFIs")
    assert rfis is not None
    assert rfis.event_types == {"create", "update", "delete", "approve"}


def test_unknown_hookimpl_is_refused() -> None:
    @hookimpl
    def tidings_payload_formatz() -> list[object]:
        return []

    with pytest.raises(PluginError, match="tidings_payload_formatz"):
        Plugins.load(extra=[plugin_module("typo", tidings_payload_formatz=tidings_payload_formatz)])


def test_duplicate_format_names_name_both_plugins() -> None:
    @hookimpl
    def tidings_payload_formats() -> list[object]:
        return [EchoFormat()]

    first = plugin_module("first", tidings_payload_formats=tidings_payload_formats)
    second = plugin_module("second", tidings_payload_formats=tidings_payload_formats)
    with pytest.raises(PluginError, match=r"'test\.echo' is provided by both first and second"):
        Plugins.load(extra=[first, second])


def test_wrong_return_values_are_named() -> None:
    @hookimpl
    def tidings_payload_formats() -> object:
        return EchoFormat()

    with pytest.raises(PluginError, match="plugin bad: tidings_payload_formats\\(\\) must return a list"):
        Plugins.load(extra=[plugin_module("bad", tidings_payload_formats=tidings_payload_formats)])

    @hookimpl
    def tidings_storage_backends() -> list[object]:
        return ["not a backend"]

    with pytest.raises(PluginError, match="plugin worse: 'not a backend' is not a StorageBackend"):
        Plugins.load(extra=[plugin_module("worse", tidings_storage_backends=tidings_storage_backends)])


def test_unknown_store_scheme_lists_known_ones() -> None:
    with pytest.raises(PluginError, match=r"no storage backend for 'redis'.*memory, (postgres, postgresql, )?sqlite"):
        Plugins.load().storage_backend_for("redis://127.0.0.1")


def test_every_hookspec_is_documented() -> None:
    """docs/plugins.md carries the generated reference verbatim, so every specification's name,
    signature and docstring is there, and a change to any of them fails here until pasted."""
    specs = [name for name, fn in inspect.getmembers(spec, inspect.isfunction) if name.startswith("tidings_")]
    assert specs == ["tidings_payload_formats", "tidings_resource_catalogs", "tidings_storage_backends"]
    assert sorted(fn.__name__ for fn in spec.hookspecs()) == specs
    text = DOCS.read_text()
    begin = "<!-- reference: generated by tidings_server.plugins.spec.reference() -->\n"
    end = "<!-- reference: end -->"
    assert text.count(begin) == 1
    assert text.count(end) == 1
    documented = text.split(begin, 1)[1].split(end, 1)[0].strip("\n")
    assert documented == spec.reference().strip("\n"), (
        "docs/plugins.md is stale: paste tidings_server.plugins.spec.reference() between its reference markers"
    )
    for name in specs:
        doc = inspect.getdoc(getattr(spec, name))
        assert doc, f"{name} has no docstring"
        assert f"### `{name}`" in documented, f"{name} is missing from the reference in docs/plugins.md"
        assert doc in documented, f"the docstring of {name} is not in the reference in docs/plugins.md"


def test_the_reference_changes_when_a_docstring_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The docs check above compares with generated text, so it can only fail if the generated
    text follows the docstrings: a hookspec with a new docstring makes a different reference."""
    before = spec.reference()
    monkeypatch.setattr(spec.tidings_storage_backends, "__doc__", "Return backends, now documented differently.")
    after = spec.reference()
    assert after != before
    assert "Return backends, now documented differently." in after


def _resource(name: str) -> ResourceType:
    return ResourceType(name, Scope.PROJECT, frozenset({"create"}))


@pytest.mark.parametrize(
    ("resources", "problem"),
    [
        ([_resource("RFI's"), _resource("RFI-s")], "would share trigger names"),
        ([_resource("!!!")], "cannot name triggers"),
        ([ResourceType("Widgets", Scope.PROJECT, frozenset({"Blow Up"}))], "invalid event type 'Blow Up'"),
    ],
)
def test_catalogs_that_cannot_name_triggers_are_refused(resources: list[ResourceType], problem: str) -> None:
    class Bad:
        name = "bad"

        def resources(self) -> list[ResourceType]:
            return resources

    @hookimpl
    def tidings_resource_catalogs() -> list[object]:
        return [Bad()]

    with pytest.raises(PluginError, match=problem):
        Plugins.load(extra=[plugin_module("bad", tidings_resource_catalogs=tidings_resource_catalogs)])


def test_formats_shipped_with_the_server_render_inline_and_plugins_do_not() -> None:
    from tidings_server.app import bundled_formats

    bundled = bundled_formats(Plugins.load())
    assert {"procore.v4", "standard-webhooks.v1", "cloudevents.binary.v1"} <= bundled
    assert "slack.v1" not in bundled  # a plugin like any third party's
