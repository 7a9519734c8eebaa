"""``slack.v1`` and ``teams.v1``: one short, human-readable message per event.

A chat channel is read by people, so the message says what changed in words ("RFI 54321 was
updated in project 6778") instead of carrying the event's fields. Both bodies are what the
services' incoming webhooks accept as they are: Slack's ``text`` (with ``blocks`` for layout)
and a Microsoft Teams message with one Adaptive Card. Only the event is used, so the same event
always gives the same bytes, as tidings requires.
"""

from __future__ import annotations

import json
from datetime import UTC

from tidings_server.domain.model import Event
from tidings_server.plugins.spec import RenderContext, RenderedPayload

JSON = "application/json"
MAX_RELATED_SHOWN = 10
MAX_TEXT = 3000  # Slack refuses a section longer than this
_VERBS = {"create": "created", "update": "updated", "delete": "deleted"}


def headline(event: Event) -> str:
    """``RFIs 54321 was updated in project 6778 of company 8``."""
    verb = _VERBS.get(event.event_type)
    article = "an" if event.event_type[:1] in "aeiou" else "a"
    what = f"was {verb}" if verb else f"had {article} {event.event_type} event"
    where = (
        f"company {event.company_id}"
        if event.project_id is None
        else f"project {event.project_id} of company {event.company_id}"
    )
    return f"{event.resource_name} {event.resource_id} {what} in {where}"


def details(event: Event) -> list[str]:
    """Who, when, what is related, and the event id people can quote when asking about it."""
    when = event.timestamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"by user {event.user_id} at {when}"]
    related = event.related_resources
    if related:
        shown = ", ".join(f"{r.name} {r.id}" for r in related[:MAX_RELATED_SHOWN])
        more = len(related) - MAX_RELATED_SHOWN
        lines.append(f"related: {shown}" + (f" and {more} more" if more > 0 else ""))
    if event.metadata.source_application_id:
        lines.append(f"via application {event.metadata.source_application_id}")
    lines.append(f"event {event.id}")
    return lines


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _slack_escape(text: str) -> str:
    """Slack reads ``&``, ``<`` and ``>`` as markup (links, mentions); names must stay plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class SlackFormat:
    name = "slack.v1"
    description = "A readable message for a Slack incoming webhook: text, with blocks for layout."
    content_type = JSON

    def render(self, event: Event, context: RenderContext) -> RenderedPayload:
        title = _slack_escape(headline(event))
        rest = [_slack_escape(line) for line in details(event)]
        body = {
            "text": _clip(f"{title} ({rest[0]})"),  # notifications and clients without blocks
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*{title}*")}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(line)} for line in rest]},
            ],
        }
        return RenderedPayload({"Content-Type": self.content_type}, _dumps(body))


class TeamsFormat:
    name = "teams.v1"
    description = "A readable message for a Microsoft Teams incoming webhook: one Adaptive Card."
    content_type = JSON

    def render(self, event: Event, context: RenderContext) -> RenderedPayload:
        card = {
            "type": "AdaptiveCard",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": _clip(headline(event)), "weight": "Bolder", "wrap": True},
                *(
                    {"type": "TextBlock", "text": _clip(line), "isSubtle": True, "spacing": "None", "wrap": True}
                    for line in details(event)
                ),
            ],
        }
        body = {
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
        }
        return RenderedPayload({"Content-Type": self.content_type}, _dumps(body))
