"""The author's kit (``tidings_server.testing``) run over every format this repository ships:
the built-in ones in tidings-server and Procore's, loaded through their entry points."""

from __future__ import annotations

import pytest

from tidings_server.app import bundled_formats
from tidings_server.plugins import spec
from tidings_server.plugins.manager import Plugins
from tidings_server.plugins.spec import PayloadFormat, RenderContext
from tidings_server.testing import PayloadFormatContract
from tidings_server.testing.formats import sample_events

LOADED = Plugins.load()
SHIPPED = sorted(
    name
    for name, origin in LOADED.format_origin.items()
    if origin.distribution in ("tidings-server", "tidings-procore")
)


def test_every_shipped_format_is_covered() -> None:
    assert SHIPPED == [
        "cloudevents.binary.v1",
        "cloudevents.structured.v1",
        "procore.v2",
        "procore.v3",
        "procore.v4",
        "standard-webhooks.v1",
    ]


class TestShippedFormats(PayloadFormatContract):
    @pytest.fixture(params=SHIPPED)
    def payload_format(self, request: pytest.FixtureRequest) -> PayloadFormat:
        return LOADED.payload_formats[request.param]


@pytest.mark.parametrize("test", [False, True], ids=["delivery", "test-send"])
@pytest.mark.parametrize("name", sorted(bundled_formats(LOADED)))
def test_bundled_formats_render_alike_for_every_hook(name: str, test: bool) -> None:
    """The engine renders an event once for all the hooks of a bundled format (its inline
    renders), which holds only while none of these formats reads the hook's name."""
    fmt = LOADED.payload_formats[name]
    for event in sample_events().values():
        first, second = (
            spec.check_rendered(fmt.render(event, RenderContext(hook, name, test=test)))
            for hook in ("companies/8/hooks/first", "companies/8/projects/6778/hooks/second")
        )
        assert first == second, f"{name} renders {event.id} differently per hook"
