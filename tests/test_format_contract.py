"""The author's kit (``tidings_server.testing``) run over every format this repository ships:
the built-in ones in tidings-server and Procore's, loaded through their entry points."""

from __future__ import annotations

import pytest

from tidings_server.plugins.manager import Plugins
from tidings_server.plugins.spec import PayloadFormat
from tidings_server.testing import PayloadFormatContract

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
