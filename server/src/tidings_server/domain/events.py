"""Event ingestion: validate a batch of published changes and store it with its deliveries."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from tidings_server.domain.errors import AlreadyExists, InvalidArgument
from tidings_server.domain.event_ids import event_ids
from tidings_server.domain.model import Event, EventMetadata, RelatedResource, ResourceType, Scope
from tidings_server.domain.names import MAX_ID
from tidings_server.domain.ports import IdempotencyConflict, Published, Store
from tidings_server.domain.quoting import quote

MAX_EVENTS_PER_CALL = 1000
MAX_RELATED_RESOURCES = 100
MAX_TEXT = 200
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# W3C Trace Context: version-traceid-parentid-flags; a later version may append fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def parse_traceparent(text: str) -> str | None:
    """The W3C ``traceparent`` in ``text`` (its first four fields), or None if it is not one.

    Version ``ff``, an all-zero trace or parent id, and a version-00 value with more fields are
    invalid, as the W3C recommendation says; a receiver of an invalid one starts a new trace.
    """
    m = _TRACEPARENT.fullmatch(text)
    if m is None or m[1] == "ff" or m[2] == "0" * 32 or m[3] == "0" * 16 or (m[1] == "00" and m[5]):
        return None
    return text[:55]


@dataclass(frozen=True, slots=True)
class EventDraft:
    """A published event as the adapter decoded it; 0 and "" mean "not given"."""

    company_id: int
    project_id: int
    resource_name: str
    resource_id: int
    event_type: str
    user_id: int
    timestamp: datetime | None = None
    metadata: EventMetadata = field(default_factory=EventMetadata)
    related_resources: tuple[RelatedResource, ...] = ()
    idempotency_key: str = ""
    traceparent: str = ""
    # Only on a company-level ``Projects`` × ``create`` event: a template to apply to the new
    # project (id or full name). Acted on after the event is stored; never stored with it.
    project_template: str = ""


# The company event that makes a project: it may name a template to apply to the new project.
PROJECTS_RESOURCE = "Projects"
PROJECTS_CREATE = "create"

# Applies a template to a project a ``Projects`` × ``create`` event made: (template, company,
# project) → "" when applied, else why not. It never raises (the event is stored by then).
ApplyTemplate = Callable[[str, int, int], Awaitable[str]]


async def _no_templates(template: str, company_id: int, project_id: int) -> str:
    return "this server applies no templates"


class EventService:
    """Accepts batches of events: all valid or none stored, then wakes the delivery engine."""

    def __init__(
        self,
        store: Store,
        resource: Callable[[Scope, str], ResourceType | None],
        now: Callable[[], datetime],
        on_published: Callable[[], None] = lambda: None,
        apply_template: ApplyTemplate = _no_templates,
    ) -> None:
        self._store = store
        self._resource = resource
        self._now = now
        self._on_published = on_published
        self._apply_template = apply_template

    async def publish(self, drafts: Sequence[EventDraft], *, traceparent: str = "") -> list[Published]:
        """Validate and store ``drafts``. ``traceparent`` is the caller's trace context, given to
        every event that carries none of its own; an invalid one is ignored, as W3C asks."""
        if not drafts:
            raise InvalidArgument("events: at least one event is required")
        if len(drafts) > MAX_EVENTS_PER_CALL:
            raise InvalidArgument(f"events: {len(drafts)} is more than the {MAX_EVENTS_PER_CALL} allowed per call")
        now = self._now()
        batch_trace = parse_traceparent(traceparent) or ""
        ids = event_ids(now, len(drafts))
        events = [self._event(f"events[{i}]", draft, ids[i], now, batch_trace) for i, draft in enumerate(drafts)]
        _check_keys_in_batch(events)
        try:
            published = await self._store.publish_events(events, now)
        except IdempotencyConflict as exc:
            raise AlreadyExists(
                f"events[{exc.index}].idempotency_key: {quote(exc.key)} was already used for a different event"
                f" ({exc.first_id}); a retry must repeat its event unchanged, and a new event needs a new key"
            ) from None
        if any(p.deliveries for p in published):
            self._on_published()
        # After the commit, so that a template's trouble never holds the event back; applying
        # is idempotent, so a repeated event (an idempotency key's retry) applies it again.
        for i, draft in enumerate(drafts):
            if draft.project_template:
                error = await self._apply_template(draft.project_template, draft.company_id, draft.resource_id)
                published[i] = replace(published[i], project_template_error=error)
        return published

    def _event(self, where: str, draft: EventDraft, event_id: str, now: datetime, batch_trace: str) -> Event:
        _positive(f"{where}.company_id", draft.company_id)
        if draft.project_id < 0 or draft.project_id > MAX_ID:
            raise InvalidArgument(f"{where}.project_id: must be positive, or 0 for a company-level event")
        _positive(f"{where}.resource_id", draft.resource_id)
        _positive(f"{where}.user_id", draft.user_id)
        scope = Scope.PROJECT if draft.project_id else Scope.COMPANY
        if not draft.resource_name:
            raise InvalidArgument(f"{where}.resource_name: required")
        if len(draft.resource_name) > MAX_TEXT:
            raise InvalidArgument(f"{where}.resource_name: longer than the {MAX_TEXT} characters allowed")
        resource = self._resource(scope, draft.resource_name)
        if resource is None:
            other = Scope.COMPANY if scope is Scope.PROJECT else Scope.PROJECT
            if self._resource(other, draft.resource_name) is not None:
                hint = "set project_id" if other is Scope.PROJECT else "leave project_id 0"
                raise InvalidArgument(
                    f"{where}.resource_name: {quote(draft.resource_name)} is a {other.value}-level resource; {hint}"
                )
            raise InvalidArgument(
                f"{where}.resource_name: unknown resource {quote(draft.resource_name)} for {scope.value}-level events"
            )
        if not draft.event_type:
            raise InvalidArgument(f"{where}.event_type: required")
        if not _EVENT_TYPE.fullmatch(draft.event_type):
            raise InvalidArgument(
                f"{where}.event_type: {quote(draft.event_type)} is not a lowercase word"
                " such as create, update or delete"
            )
        if draft.event_type not in resource.event_types:
            known = ", ".join(sorted(resource.event_types))
            raise InvalidArgument(
                f"{where}.event_type: {quote(draft.resource_name)} has no event type {quote(draft.event_type)};"
                f" known: {known}"
            )
        if draft.timestamp is not None and draft.timestamp.tzinfo is None:
            raise InvalidArgument(f"{where}.timestamp: must carry a time zone")
        _metadata(f"{where}.metadata", draft.metadata)
        if len(draft.related_resources) > MAX_RELATED_RESOURCES:
            raise InvalidArgument(
                f"{where}.related_resources: {len(draft.related_resources)} is more than the"
                f" {MAX_RELATED_RESOURCES} allowed"
            )
        for j, related in enumerate(draft.related_resources):
            _positive(f"{where}.related_resources[{j}].id", related.id)
            if not related.name or len(related.name) > MAX_TEXT:
                raise InvalidArgument(f"{where}.related_resources[{j}].name: required, at most {MAX_TEXT} characters")
        if draft.project_template:
            if (draft.project_id, draft.resource_name, draft.event_type) != (0, PROJECTS_RESOURCE, PROJECTS_CREATE):
                raise InvalidArgument(
                    f"{where}.project_template: only a company-level {PROJECTS_RESOURCE} {PROJECTS_CREATE} event"
                    " can name a template to apply"
                )
            if len(draft.project_template) > MAX_TEXT:
                raise InvalidArgument(f"{where}.project_template: longer than the {MAX_TEXT} characters allowed")
        key = draft.idempotency_key
        if len(key) > MAX_TEXT or any(not 0x21 <= ord(c) <= 0x7E for c in key):
            raise InvalidArgument(f"{where}.idempotency_key: at most {MAX_TEXT} printable ASCII characters, no spaces")
        trace = batch_trace
        if draft.traceparent:
            trace = parse_traceparent(draft.traceparent) or ""
            if not trace:
                raise InvalidArgument(
                    f"{where}.traceparent: {quote(draft.traceparent)} is not a W3C traceparent"
                    " (00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>)"
                )
        return Event(
            id=event_id,
            serial=0,
            timestamp=draft.timestamp or now,
            company_id=draft.company_id,
            project_id=draft.project_id or None,
            user_id=draft.user_id,
            resource_name=draft.resource_name,
            resource_id=draft.resource_id,
            event_type=draft.event_type,
            metadata=draft.metadata,
            related_resources=draft.related_resources,
            idempotency_key=key,
            traceparent=trace,
            idempotency_fingerprint=fingerprint(draft) if key else "",
        )


def fingerprint(draft: EventDraft) -> str:
    """A hash of the event as its publisher sent it, which a retry sends again unchanged.

    The time is the given one (a retry of an event without a time must not differ by when it
    arrived); the trace context is left out, since a retry may well be a new span. The text
    hashed is the ``repr`` of a tuple of ints, strings and None, which is stable across Python
    versions; BLAKE2b costs a fifth of SHA-256 here, and 128 bits are plenty.
    """
    meta = draft.metadata
    canonical = (
        draft.company_id,
        draft.project_id,
        draft.resource_name,
        draft.resource_id,
        draft.event_type,
        draft.user_id,
        draft.timestamp.isoformat() if draft.timestamp is not None else None,
        (
            meta.source_user_id,
            meta.source_project_id,
            meta.source_operation_id,
            meta.source_company_id,
            meta.source_application_id,
        ),
        tuple((r.id, r.name) for r in draft.related_resources),
    )
    return hashlib.blake2b(repr(canonical).encode(), digest_size=16).hexdigest()


def _check_keys_in_batch(events: Sequence[Event]) -> None:
    """One key twice in a batch is fine for the same event (a client's own retry merged into a
    batch) and a mistake for two different ones."""
    first: dict[tuple[int, str], tuple[int, str]] = {}
    for i, event in enumerate(events):
        if not event.idempotency_key:
            continue
        seen = first.setdefault((event.company_id, event.idempotency_key), (i, event.idempotency_fingerprint))
        if seen[1] != event.idempotency_fingerprint:
            raise InvalidArgument(
                f"events[{i}].idempotency_key: {quote(event.idempotency_key)} is also the key of events[{seen[0]}],"
                " a different event; one key names one event"
            )


def _positive(field_name: str, value: int) -> None:
    if value <= 0:
        raise InvalidArgument(f"{field_name}: required, a positive integer (got {value})")
    if value > MAX_ID:
        raise InvalidArgument(f"{field_name}: {value} is larger than {MAX_ID}")


def _metadata(where: str, metadata: EventMetadata) -> None:
    for name in ("source_user_id", "source_project_id", "source_operation_id", "source_company_id"):
        value = getattr(metadata, name)
        if value is not None and not 0 < value <= MAX_ID:
            raise InvalidArgument(f"{where}.{name}: must be a positive integer when set (got {value})")
    app = metadata.source_application_id
    if app is not None and (not app or len(app) > MAX_TEXT):
        raise InvalidArgument(f"{where}.source_application_id: 1 to {MAX_TEXT} characters when set")
