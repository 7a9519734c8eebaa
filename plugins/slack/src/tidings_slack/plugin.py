"""The module the ``slack`` entry point names: it hands tidings the chat message formats."""

from __future__ import annotations

from tidings_server.plugins.spec import PayloadFormat, hookimpl
from tidings_slack.formats import SlackFormat, TeamsFormat


@hookimpl
def tidings_payload_formats() -> list[PayloadFormat]:
    return [SlackFormat(), TeamsFormat()]
