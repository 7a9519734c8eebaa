"""The tidings author's kit, run over both formats exactly as a third party would run it."""

from __future__ import annotations

import pytest

from tidings_server.plugins.spec import PayloadFormat
from tidings_server.testing import PayloadFormatContract
from tidings_slack.formats import SlackFormat, TeamsFormat


class TestSlackFormat(PayloadFormatContract):
    @pytest.fixture
    def payload_format(self) -> PayloadFormat:
        return SlackFormat()


class TestTeamsFormat(PayloadFormatContract):
    @pytest.fixture
    def payload_format(self) -> PayloadFormat:
        return TeamsFormat()
