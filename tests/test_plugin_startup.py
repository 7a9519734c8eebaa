"""A plugin that cannot be imported, with a real entry point: a distribution's metadata written
into a directory on sys.path, as pip would leave it. The server starts without the plugin
(and says why), unless a stored hook needs one of its formats: then it refuses, naming both."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.harness import Api, ServerThread
from tidings.v1 import catalog_pb2, deliveries_pb2, events_pb2, hooks_pb2
from tidings_server.app import Config
from tidings_server.plugins.manager import PluginError, Plugins

MODULE = "tidings_acme_text_test_plugin"
WORKING = """
from tidings_server.plugins.spec import RenderedPayload, hookimpl


class PlainText:
    name = "acme.text"
    description = "One line of text per event."
    content_type = "text/plain; charset=utf-8"

    def render(self, event, context):
        line = f"{event.resource_name} {event.resource_id} {event.event_type}\\n"
        return RenderedPayload({"Content-Type": self.content_type}, line.encode())


@hookimpl
def tidings_payload_formats():
    return [PlainText()]
"""
BROKEN = 'raise ImportError("acme needs libfoo, which is not installed")\n'
FAILURE = "plugin acme (acme-text 1.0) failed to load: ImportError('acme needs libfoo, which is not installed')"


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed distribution ``acme-text`` whose ``tidings`` entry point ``acme`` names
    MODULE; the test writes the module's source (working or broken) to the returned path."""
    site = tmp_path / "site"
    info = site / "acme_text-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-text\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[tidings]\nacme = {MODULE}\n")
    monkeypatch.syspath_prepend(str(site))
    yield site / f"{MODULE}.py"
    sys.modules.pop(MODULE, None)


def install(module: Path, source: str) -> None:
    module.write_text(source)
    sys.modules.pop(MODULE, None)


def failure_text(exc: BaseException) -> str:
    """The message of the first non-group exception inside ``exc``."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return str(exc)


def test_the_plugin_loads_through_its_entry_point(acme: Path) -> None:
    install(acme, WORKING)
    plugins = Plugins.load()
    assert plugins.format_origin["acme.text"].distribution == "acme-text"
    assert plugins.format_origin["acme.text"].version == "1.0"


def test_a_broken_plugin_is_reported_and_the_server_runs_without_it(
    acme: Path, server_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    install(acme, BROKEN)
    with caplog.at_level(logging.ERROR, logger="tidings_server.plugins.manager"):
        server = ServerThread(server_config).start()
    try:
        assert any(
            "plugin acme from acme-text failed to load" in r.getMessage() and "libfoo" in r.getMessage()
            for r in caplog.records
        )
        api = Api.connect(server.port)
        formats = api.catalog.ListPayloadFormats(catalog_pb2.ListPayloadFormatsRequest()).payload_formats
        assert "acme.text" not in {f.name for f in formats}
        assert "procore.v4" in {f.name for f in formats}
        api.channel.close()
    finally:
        server.stop()
    [info] = [i for i in Plugins.load().infos if i.name == "acme"]
    assert (info.distribution, info.version) == ("acme-text", "1.0")
    assert info.error == "ImportError('acme needs libfoo, which is not installed')"


def create_hook_using_acme(server_config: Config) -> str:
    server = ServerThread(server_config).start()
    try:
        api = Api.connect(server.port)
        hook = api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent="companies/8/projects/6778",
                hook_id="plain",
                hook=hooks_pb2.Hook(destination_url="http://127.0.0.1:9/in", payload_format="acme.text"),
            )
        )
        api.channel.close()
        return hook.name
    finally:
        server.stop()


def test_a_stored_hook_needing_the_broken_plugin_stops_the_start(acme: Path, server_config: Config) -> None:
    install(acme, WORKING)
    name = create_hook_using_acme(server_config)
    install(acme, BROKEN)
    with pytest.raises(BaseException) as err:  # noqa: PT011 - the message is what is checked
        ServerThread(server_config).start()
    assert failure_text(err.value) == (
        f"stored hooks use payload formats no loaded plugin provides: 'acme.text' (1 hook, first {name}); {FAILURE}."
        " To start, repair it, or start with --disable-plugin acme to run without it (those hooks' deliveries"
        " then wait for it), or delete those hooks"
    )
    assert isinstance(err.value, PluginError) or err.group_contains(PluginError)


def test_a_refusal_does_not_blame_an_unrelated_broken_plugin(acme: Path, server_config: Config, tmp_path: Path) -> None:
    """The hook needs a format nobody installed; the broken acme plugin is not its provider."""
    install(acme, WORKING)
    name = create_hook_using_acme(server_config)
    install(acme, BROKEN)
    info = tmp_path / "site" / "acme_text-1.0.dist-info" / "METADATA"
    info.write_text("Metadata-Version: 2.1\nName: other-text\nVersion: 1.0\n")
    (tmp_path / "site" / "acme_text-1.0.dist-info" / "entry_points.txt").write_text(f"[tidings]\nother = {MODULE}\n")
    with pytest.raises(BaseException) as err:  # noqa: PT011
        ServerThread(server_config).start()
    assert failure_text(err.value) == (
        f"stored hooks use payload formats no loaded plugin provides: 'acme.text' (1 hook, first {name});"
        " no installed plugin provides it (failed to load, none of them its likely provider: other)."
        " To start, install the distribution that provides it, or delete those hooks"
    )


def test_a_disabled_plugin_a_hook_needs_lets_the_server_start_and_its_deliveries_wait(
    acme: Path, server_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    install(acme, WORKING)
    name = create_hook_using_acme(server_config)
    with caplog.at_level(logging.WARNING, logger="tidings_server.app"):
        server = ServerThread(replace(server_config, blocked_plugins=frozenset({"acme"}))).start()
    try:
        assert any(
            f"'acme.text' (1 hook, first {name})" in r.getMessage() and "plugins disabled (acme)" in r.getMessage()
            for r in caplog.records
        )
        api = Api.connect(server.port)
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            )
        )
        event = events_pb2.Event(
            company_id=8, project_id=6778, resource_name="RFIs", resource_id=1, event_type="update", user_id=1
        )
        api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[event]))
        deadline = time.monotonic() + 30
        while True:
            [delivery] = api.deliveries.ListDeliveries(deliveries_pb2.ListDeliveriesRequest(parent=name)).deliveries
            if delivery.attempt_count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert delivery.status == deliveries_pb2.DELIVERY_STATUS_RETRYING
        assert delivery.last_error == (
            "payload format acme.text is not loaded (its plugin is disabled or not installed); retried until it is back"
        )
        api.channel.close()
    finally:
        server.stop()
