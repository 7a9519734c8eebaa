"""What people read in the channel, word for word, and how the plugin is found."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any

from tidings_server.domain.model import Event, RelatedResource
from tidings_server.plugins.manager import Plugins
from tidings_server.plugins.spec import RenderContext
from tidings_server.testing import sample_events
from tidings_slack import plugin
from tidings_slack.formats import SlackFormat, TeamsFormat

CONTEXT = RenderContext("companies/8/projects/6778/hooks/chat", "slack.v1")
TYPICAL = sample_events()["typical"]
COMPANY = sample_events()["company-level"]


def slack(event: Event) -> Any:
    return json.loads(SlackFormat().render(event, CONTEXT).body)


def test_slack_message_for_a_project_event() -> None:
    assert slack(TYPICAL) == {
        "text": "RFIs 54321 was updated in project 6778 of company 8 (by user 5447 at 2025-02-06 23:34:12 UTC)",
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*RFIs 54321 was updated in project 6778 of company 8*"},
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "by user 5447 at 2025-02-06 23:34:12 UTC"},
                    {"type": "mrkdwn", "text": "related: Direct Costs 1234"},
                    {"type": "mrkdwn", "text": "via application b8f1e3c2-erp"},
                    {"type": "mrkdwn", "text": "event 01jkg7hb7v8x0a3r2b4c5d6e7f"},
                ],
            },
        ],
    }


def test_company_events_name_the_company_only() -> None:
    assert slack(COMPANY)["text"] == "Projects 6778 was created in company 8 (by user 5447 at 2025-02-06 23:34:12 UTC)"


def test_names_cannot_become_slack_markup() -> None:
    event = replace(TYPICAL, resource_name="<!channel> & <https://evil.example|click>")
    text = slack(event)["text"]
    assert text.startswith("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; 54321 was updated")
    assert "<" not in json.dumps(slack(event))


def test_long_lists_of_related_resources_are_cut() -> None:
    event = replace(TYPICAL, related_resources=tuple(RelatedResource(i, "Drawing") for i in range(25)))
    [_, context] = slack(event)["blocks"]
    related = context["elements"][1]["text"]
    assert related == "related: " + ", ".join(f"Drawing {i}" for i in range(10)) + " and 15 more"


def test_other_event_types_are_named_as_they_are() -> None:
    text = slack(replace(TYPICAL, event_type="approve"))["text"]
    assert text.startswith("RFIs 54321 had an approve event in project 6778")
    assert slack(replace(TYPICAL, event_type="close"))["text"].startswith("RFIs 54321 had a close event")


def test_teams_message_is_one_adaptive_card() -> None:
    body = json.loads(TeamsFormat().render(COMPANY, CONTEXT).body)
    [attachment] = body["attachments"]
    assert (body["type"], attachment["contentType"]) == ("message", "application/vnd.microsoft.card.adaptive")
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert [block["text"] for block in card["body"]] == [
        "Projects 6778 was created in company 8",
        "by user 5447 at 2025-02-06 23:34:12 UTC",
        "event 01jkg7hb7v8x0a3r2b4c5d6e80",
    ]


def test_tidings_finds_the_plugin_through_its_entry_point() -> None:
    [entry_point] = [ep for ep in entry_points(group="tidings") if ep.name == "slack"]
    assert entry_point.load() is plugin
    loaded = Plugins.load()
    origin = loaded.format_origin["slack.v1"]
    assert (origin.plugin, origin.distribution, origin.version) == ("slack", "tidings-slack", "0.1.0")
    assert loaded.format_origin["teams.v1"].distribution == "tidings-slack"
