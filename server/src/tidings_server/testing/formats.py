"""``PayloadFormatContract``: what every payload format must do, as pytest tests to inherit.

The checks are the engine's own rules (``plugins.spec.check_rendered``: body bytes, header names
and values, reserved headers, Content-Type, sizes) applied to every kind of event tidings
publishes, plus what receivers rely on: equal events give equal bytes, the changed resource
is named in the body, JSON bodies parse, and the body survives the decode-then-verify that
Standard Webhooks libraries do before checking a signature.

Assertions carry their own messages, since pytest does not rewrite asserts in installed modules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tidings_server.domain import signing
from tidings_server.domain.model import Event, EventMetadata, RelatedResource
from tidings_server.plugins.spec import (
    MAX_BODY_BYTES,
    PayloadFormat,
    RenderContext,
    RenderError,
    check_rendered,
)

BIG = 2**63 - 1  # the largest id the API accepts
_NAME = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*(?:\.[a-z0-9]+(?:[-_][a-z0-9]+)*)+")
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+(?:\s*;\s*[a-z0-9!#$&^_.+-]+=[^;\s]+)*", re.IGNORECASE)
_T = datetime(2025, 2, 6, 23, 34, 12, 246562, tzinfo=UTC)


def sample_events() -> dict[str, Event]:
    """One event of every shape tidings publishes, by name; formats must render them all."""
    typical = Event(
        id="01jkg7hb7v8x0a3r2b4c5d6e7f",
        serial=1077,
        timestamp=_T,
        company_id=8,
        project_id=6778,
        user_id=5447,
        resource_name="RFIs",
        resource_id=54321,
        event_type="update",
        metadata=EventMetadata(
            source_user_id=5447,
            source_project_id=6778,
            source_operation_id=91,
            source_company_id=8,
            source_application_id="b8f1e3c2-erp",
        ),
        related_resources=(RelatedResource(1234, "Direct Costs"),),
    )
    return {
        "typical": typical,
        "company-level": replace(
            typical,
            id="01jkg7hb7v8x0a3r2b4c5d6e80",
            project_id=None,
            resource_name="Projects",
            resource_id=6778,
            event_type="create",
            metadata=EventMetadata(source_company_id=8),
            related_resources=(),
        ),
        "empty-metadata": replace(
            typical, id="01jkg7hb7v8x0a3r2b4c5d6e81", metadata=EventMetadata(), related_resources=()
        ),
        "unicode": replace(
            typical,
            id="01jkg7hb7v8x0a3r2b4c5d6e82",
            resource_name="Änderungsaufträge – Prüfung ✓ 🚧",
            metadata=EventMetadata(source_application_id="アプリ-ü"),
            related_resources=(RelatedResource(7, 'Zeichnung "A" \\ €'),),
        ),
        "large-ids": Event(
            id="7zzzzzzzzzzzzzzzzzzzzzzzzz",
            serial=BIG,
            timestamp=_T,
            company_id=BIG,
            project_id=BIG,
            user_id=BIG,
            resource_name="RFIs",
            resource_id=BIG,
            event_type="delete",
            metadata=EventMetadata(BIG, BIG, BIG, BIG, "x" * 255),
            related_resources=(RelatedResource(BIG, "RFIs"),),
        ),
        "many-related": replace(
            typical,
            id="01jkg7hb7v8x0a3r2b4c5d6e83",
            related_resources=tuple(RelatedResource(i, "Related resource " + "r" * 200) for i in range(500)),
        ),
        "offset-timestamp": replace(
            typical,
            id="01jkg7hb7v8x0a3r2b4c5d6e84",
            timestamp=datetime(2025, 2, 7, 5, 4, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
    }


SAMPLES = tuple(sample_events())


def context_for(fmt: PayloadFormat) -> RenderContext:
    return RenderContext("companies/8/projects/6778/hooks/contract", fmt.name)


def render_checked(fmt: PayloadFormat, event: Event) -> tuple[list[tuple[str, str]], bytes]:
    """Render ``event`` and apply the engine's checks; a violation fails the calling test."""
    try:
        return check_rendered(fmt.render(event, context_for(fmt)))
    except RenderError as exc:
        pytest.fail(f"{fmt.name}: {exc}")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _text(fmt: PayloadFormat, body: bytes) -> str:
    """What a body says: every string and number of a JSON document, or the decoded text."""
    if _is_json(fmt.content_type):
        try:
            return "\n".join(_strings(json.loads(body)))
        except ValueError:
            pass  # test_json_bodies_parse reports it
    return body.decode("utf-8", errors="replace")


def _strings(value: object) -> Iterator[str]:
    """Every string (keys and values) in a parsed JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


class PayloadFormatContract:
    """Inherit in a ``Test…`` class and provide a ``payload_format`` fixture returning the format.

    Every test here is the contract; none needs overriding. A format may do more (more headers,
    richer bodies): the contract only says what it may not get wrong.
    """

    @pytest.fixture
    def payload_format(self) -> PayloadFormat:
        raise NotImplementedError("define a payload_format fixture returning the format under test")

    # -- what it declares ---------------------------------------------------------------------

    def test_is_a_payload_format(self, payload_format: PayloadFormat) -> None:
        assert isinstance(payload_format, PayloadFormat), (
            f"{payload_format!r} lacks name, description, content_type or render()"
        )

    def test_name_is_a_versioned_identifier(self, payload_format: PayloadFormat) -> None:
        name = payload_format.name
        assert isinstance(name, str), f"name {name!r}: must be a str"
        assert _NAME.fullmatch(name), f"name {name!r}: use lowercase dotted words ending in a version, like acme.v1"

    def test_description_is_one_short_line(self, payload_format: PayloadFormat) -> None:
        text = payload_format.description
        assert isinstance(text, str), f"description {text!r}: must be a str"
        assert text.strip(), "description: required (ListPayloadFormats shows it)"
        assert "\n" not in text, "description: one line"
        assert len(text) <= 200, f"description: {len(text)} characters is more than 200"

    def test_content_type_is_a_media_type(self, payload_format: PayloadFormat) -> None:
        value = payload_format.content_type
        assert isinstance(value, str), f"content_type {value!r}: must be a str"
        assert _MEDIA_TYPE.fullmatch(value), f"content_type {value!r}: not a media type like application/json"

    # -- every render --------------------------------------------------------------------------

    @pytest.mark.parametrize("sample", SAMPLES)
    def test_renders_every_kind_of_event_within_the_limits(self, payload_format: PayloadFormat, sample: str) -> None:
        headers, body = render_checked(payload_format, sample_events()[sample])
        assert len(body) <= MAX_BODY_BYTES  # check_rendered enforces it; stated here for readers
        declared = [v for k, v in headers if k.lower() == "content-type"]
        assert [v.lower() for v in declared] == [payload_format.content_type.lower()], (
            f"sample {sample}: Content-Type {declared} differs from content_type {payload_format.content_type!r}"
        )

    @pytest.mark.parametrize("sample", SAMPLES)
    def test_equal_events_render_to_equal_bytes(self, payload_format: PayloadFormat, sample: str) -> None:
        event = sample_events()[sample]
        first = render_checked(payload_format, event)
        twin = replace(event)  # equal, not identical: no caching on object identity
        for _ in range(3):
            assert render_checked(payload_format, twin) == first, (
                f"sample {sample}: rendering is not deterministic; receivers and signatures need equal bytes"
            )

    @pytest.mark.parametrize("sample", SAMPLES)
    def test_body_names_the_changed_resource(self, payload_format: PayloadFormat, sample: str) -> None:
        event = sample_events()[sample]
        _, body = render_checked(payload_format, event)
        text = _text(payload_format, body)
        assert str(event.resource_id) in text, (
            f"sample {sample}: resource id {event.resource_id} is not in the body (all digits, as text or number)"
        )
        assert event.resource_name in text, f"sample {sample}: resource name {event.resource_name!r} is not in the body"

    @pytest.mark.parametrize("sample", SAMPLES)
    def test_json_bodies_parse(self, payload_format: PayloadFormat, sample: str) -> None:
        if not _is_json(payload_format.content_type):
            pytest.skip(f"{payload_format.content_type} is not JSON")
        _, body = render_checked(payload_format, sample_events()[sample])
        try:
            json.loads(body)
        except ValueError as exc:
            pytest.fail(f"sample {sample}: the body is not JSON: {exc}")

    @pytest.mark.parametrize("sample", ["company-level", "empty-metadata"])
    def test_absent_fields_do_not_show_as_none(self, payload_format: PayloadFormat, sample: str) -> None:
        """A missing project or metadata field is null or left out, never the text ``None``
        (an f-string over an optional field). Compared with the typical event, whose fields are
        all present, so a format's own ``None`` (a constant) does not count."""

        def nones(name: str) -> int:
            return _text(payload_format, render_checked(payload_format, sample_events()[name])[1]).count("None")

        assert nones(sample) <= nones("typical"), f"sample {sample}: an absent field is rendered as 'None'"

    # -- signing -------------------------------------------------------------------------------

    @pytest.mark.parametrize("sample", SAMPLES)
    def test_signature_verifies_over_the_exact_body(self, payload_format: PayloadFormat, sample: str) -> None:
        """Receivers verify ``{id}.{timestamp}.{body}`` over the bytes they got; Standard Webhooks
        libraries decode the body as UTF-8 first, so it must be UTF-8 that re-encodes exactly."""
        event = sample_events()[sample]
        _, body = render_checked(payload_format, event)
        try:
            decoded = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            pytest.fail(f"sample {sample}: the body is not UTF-8, so signature libraries cannot verify it: {exc}")
        assert decoded.encode("utf-8") == body
        secret = signing.new_secret()
        sent = dict(signing.headers([secret], event.id, _T, body))
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{sent['webhook-id']}.{sent['webhook-timestamp']}.{decoded}".encode()
        expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert sent["webhook-signature"] == expected, f"sample {sample}: the signature does not cover the body sent"
        again = dict(signing.headers([secret], event.id, _T, render_checked(payload_format, event)[1]))
        assert again == sent, f"sample {sample}: a retry would carry a different signature for the same event"
