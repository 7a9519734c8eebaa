"""The worked example plugin (plugins/slack) installed next to the server: listed by
ListPayloadFormats with its distribution, and delivering a Slack message to a receiver."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp
from standardwebhooks.webhooks import Webhook

from tests.harness import Api
from tests.http_sink import running_sink
from tidings.v1 import catalog_pb2, events_pb2, hooks_pb2


def test_slack_format_is_listed_and_delivers(api: Api) -> None:
    formats = api.catalog.ListPayloadFormats(catalog_pb2.ListPayloadFormatsRequest()).payload_formats
    shown = {f.name: (f.content_type, f.distribution, f.version) for f in formats}
    assert shown["slack.v1"] == ("application/json", "tidings-slack", "0.1.0")
    assert shown["teams.v1"] == ("application/json", "tidings-slack", "0.1.0")
    with running_sink() as sink:
        hook = api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent="companies/8/projects/6778",
                hook=hooks_pb2.Hook(destination_url=sink.url("/services/T0/B0/x"), payload_format="slack.v1"),
            )
        )
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(
                parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
            )
        )
        event = events_pb2.Event(
            company_id=8,
            project_id=6778,
            resource_name="RFIs",
            resource_id=54321,
            event_type="update",
            user_id=5447,
            timestamp=Timestamp(seconds=1_738_884_852),
        )
        event_id = api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[event])).results[0].event_id
        assert not sink.wait_for({event_id}, timeout=10)
        [request] = sink.requests
    message = json.loads(request.body)
    assert (
        message["text"]
        == "RFIs 54321 was updated in project 6778 of company 8 (by user 5447 at 2025-02-06 23:34:12 UTC)"
    )
    assert request.header("Content-Type") == "application/json"
    Webhook(hook.signing_secret).verify(request.body, dict(request.headers))
