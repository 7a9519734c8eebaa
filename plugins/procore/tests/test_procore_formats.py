"""The three formats against Procore's documented examples: names, order, types and values."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tidings_procore.formats import ProcoreV2Format, ProcoreV3Format, ProcoreV4Format, rfc3339_utc
from tidings_server.domain.model import Event, EventMetadata, RelatedResource
from tidings_server.plugins.spec import PayloadFormat, RenderContext

EXAMPLES: dict[str, Any] = json.loads(
    Path(__file__).with_name("procore_payload_examples.json").read_text(encoding="utf-8")
)


def event_from_v2(example: dict[str, Any]) -> Event:
    """The event a v2.0/v3.0 example was rendered from: integer ids, ``ulid`` is the event id."""
    return Event(
        id=example["ulid"],
        serial=example["id"],
        timestamp=datetime.fromisoformat(example["timestamp"]),
        company_id=example["company_id"],
        project_id=example["project_id"],
        user_id=example["user_id"],
        resource_name=example["resource_name"],
        resource_id=example["resource_id"],
        event_type=example["event_type"],
        metadata=EventMetadata(**example["metadata"]),
        related_resources=tuple(RelatedResource(**r) for r in example.get("related_resources", [])),
    )


def event_from_v4(example: dict[str, Any]) -> Event:
    """The event a v4.0 example was rendered from; v4 carries no serial, so any one will do."""
    return Event(
        id=example["id"],
        serial=1,
        timestamp=datetime.fromisoformat(example["timestamp"]),
        company_id=int(example["company_id"]),
        project_id=int(example["project_id"]),
        user_id=int(example["user_id"]),
        resource_name=example["resource_type"],
        resource_id=int(example["resource_id"]),
        event_type=example["reason"],
    )


CASES: list[tuple[PayloadFormat, str, Callable[[dict[str, Any]], Event]]] = [
    (ProcoreV2Format(), "v2.0", event_from_v2),
    (ProcoreV3Format(), "v3.0", event_from_v2),
    (ProcoreV4Format(), "v4.0", event_from_v4),
]
IDS = [fmt.name for fmt, _, _ in CASES]


def shape(value: Any) -> Any:
    """``value`` with every dict turned into its ordered items and every leaf tagged with its type.

    Plain ``==`` ignores dict order and treats ``1 == 1.0`` and ``True == 1``; this does not.
    """
    if isinstance(value, dict):
        return ("dict", [(key, shape(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [shape(item) for item in value])
    return (type(value).__name__, value)


def render(fmt: PayloadFormat, event: Event) -> dict[str, Any]:
    rendered = fmt.render(event, RenderContext(hook_name="companies/1/hooks/h", payload_format=fmt.name))
    assert rendered.headers == {"Content-Type": "application/json"}
    assert isinstance(rendered.body, bytes)
    parsed: dict[str, Any] = json.loads(rendered.body.decode("utf-8"))
    return parsed


@pytest.mark.parametrize(("fmt", "version", "build"), CASES, ids=IDS)
def test_renders_the_documented_example_exactly(
    fmt: PayloadFormat, version: str, build: Callable[[dict[str, Any]], Event]
) -> None:
    example = EXAMPLES[version]
    assert shape(render(fmt, build(example))) == shape(example)


@pytest.mark.parametrize(("fmt", "version", "build"), CASES, ids=IDS)
def test_body_is_compact_deterministic_utf8_json(
    fmt: PayloadFormat, version: str, build: Callable[[dict[str, Any]], Event]
) -> None:
    event = build(EXAMPLES[version])
    context = RenderContext(hook_name="companies/1/hooks/h", payload_format=fmt.name)
    body = fmt.render(event, context).body
    assert body == fmt.render(event, context).body
    assert body == json.dumps(EXAMPLES[version], separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(("fmt", "version", "build"), CASES, ids=IDS)
def test_company_level_event_has_null_project_id(
    fmt: PayloadFormat, version: str, build: Callable[[dict[str, Any]], Event]
) -> None:
    project_event = build(EXAMPLES[version])
    company_event = replace(project_event, project_id=None)
    assert company_event.project_id is None
    project_payload = render(fmt, project_event)
    company_payload = render(fmt, company_event)
    assert list(company_payload) == list(project_payload)
    assert company_payload["project_id"] is None


def test_v3_related_resources_default_to_an_empty_list() -> None:
    event = replace(event_from_v2(EXAMPLES["v3.0"]), related_resources=())
    payload = render(ProcoreV3Format(), event)
    assert payload["related_resources"] == []
    assert list(payload)[-1] == "related_resources"


def test_v3_keeps_every_related_resource_in_order() -> None:
    related = (RelatedResource(id=2, name="Direct Costs"), RelatedResource(id=1, name="Budgets"))
    event = replace(event_from_v2(EXAMPLES["v3.0"]), related_resources=related)
    payload = render(ProcoreV3Format(), event)
    assert shape(payload["related_resources"]) == shape(
        [{"id": 2, "name": "Direct Costs"}, {"id": 1, "name": "Budgets"}]
    )


def test_v2_metadata_nulls_when_the_source_is_unknown() -> None:
    event = replace(event_from_v2(EXAMPLES["v2.0"]), metadata=EventMetadata())
    metadata = render(ProcoreV2Format(), event)["metadata"]
    assert list(metadata.items()) == [
        ("source_user_id", None),
        ("source_project_id", None),
        ("source_operation_id", None),
        ("source_company_id", None),
        ("source_application_id", None),
    ]


def test_v4_reason_passes_event_types_beyond_create_update_delete() -> None:
    event = replace(event_from_v4(EXAMPLES["v4.0"]), event_type="status_change")
    assert render(ProcoreV4Format(), event)["reason"] == "status_change"


@pytest.mark.parametrize(("fmt", "version", "build"), CASES, ids=IDS)
def test_non_ascii_text_is_sent_as_utf8(
    fmt: PayloadFormat, version: str, build: Callable[[dict[str, Any]], Event]
) -> None:
    event = replace(build(EXAMPLES[version]), resource_name="Bautagebücher – Einträge")
    body = fmt.render(event, RenderContext(hook_name="h", payload_format=fmt.name)).body
    assert "Bautagebücher – Einträge".encode() in body
    assert b"\\u" not in body


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2025, 2, 6, 23, 34, 12, 246562, tzinfo=UTC), "2025-02-06T23:34:12.246562Z"),
        (datetime(2025, 2, 6, 23, 34, 12, tzinfo=UTC), "2025-02-06T23:34:12.000000Z"),
        (datetime(2025, 2, 7, 1, 4, 5, 7, tzinfo=timezone(timedelta(hours=2))), "2025-02-06T23:04:05.000007Z"),
    ],
)
def test_timestamps_are_utc_with_microseconds(moment: datetime, expected: str) -> None:
    assert rfc3339_utc(moment) == expected


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        rfc3339_utc(datetime(2025, 2, 6, 23, 34, 12))
