"""Domain records: plain immutable dataclasses shared by the core, stores and plugins."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta


class Scope(enum.Enum):
    """The level a hook, a resource or an event belongs to."""

    COMPANY = "company"
    PROJECT = "project"


class HookStatus(enum.Enum):
    """Whether a hook delivers (ACTIVE), holds deliveries (PAUSED) or drops them (DISABLED)."""

    ACTIVE = "active"
    PAUSED = "paused"
    DISABLED = "disabled"


class Ordering(enum.Enum):
    """Whether a hook's deliveries may overtake each other (UNORDERED) or not per resource."""

    UNORDERED = "unordered"
    PER_RESOURCE = "per_resource"


DEFAULT_RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When an attempt failed and how it is retried; the defaults are Procore's."""

    timeout: timedelta = timedelta(seconds=5)
    retry_window: timedelta = timedelta(hours=12)
    initial_backoff: timedelta = timedelta(seconds=1)
    max_backoff: timedelta = timedelta(hours=1)
    retryable_statuses: frozenset[int] = DEFAULT_RETRYABLE_STATUSES


DEFAULT_MAX_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class SendRate:
    """At most ``per_second`` deliveries a second to a hook, in bursts of up to ``burst``
    (Convoy's default, 1,000 a minute, is ``SendRate(1000 / 60, burst)``). Deliveries over it
    wait their turn; none fails for it."""

    per_second: float
    burst: int = 1


@dataclass(frozen=True, slots=True)
class Hook:
    """A destination and how to talk to it.

    ``authorization_header`` and the signing secrets are held in full; only the adapter masks or
    omits them on the way out, so the core can use them and stores can keep them.
    ``previous_signing_secret`` still signs deliveries until ``previous_secret_expire_time``
    (a rotation's overlap), so receivers can switch secrets without rejecting anything.
    """

    name: str
    company_id: int
    project_id: int | None
    display_name: str
    destination_url: str
    authorization_header: str = field(repr=False)  # a secret: never in logs or tracebacks
    payload_format: str
    status: HookStatus
    create_time: datetime
    update_time: datetime
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    ordering: Ordering = Ordering.UNORDERED
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    signing_disabled: bool = False
    signing_secret: str = field(default="", repr=False)
    previous_signing_secret: str = field(default="", repr=False)
    previous_secret_expire_time: datetime | None = None
    rate_limit: SendRate | None = None  # None: as fast as max_concurrency allows
    # Why and since when a hook is DISABLED by tidings itself (410 Gone, failing for too long);
    # empty when it is not, or when an admin disabled it.
    disabled_reason: str = ""
    disable_time: datetime | None = None
    # A company hook's projects (ascending, no repeats): the only projects whose events of
    # project-level resources it receives; empty means every project of the company. Always
    # empty for a project hook. Company-level events are never narrowed by it.
    projects: tuple[int, ...] = ()
    # A hook made by applying a template: the template's name and the revision it was copied
    # from ("" and 0 for a hook made by hand). Later edits of the template never reach it.
    template: str = ""
    template_revision: int = 0

    @property
    def scope(self) -> Scope:
        return Scope.COMPANY if self.project_id is None else Scope.PROJECT

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets a delivery made at ``now`` is signed with: none when signing is off,
        the current one, and the previous one while the rotation's overlap lasts."""
        if self.signing_disabled or not self.signing_secret:
            return ()
        expire = self.previous_secret_expire_time
        if self.previous_signing_secret and expire is not None and now < expire:
            return (self.signing_secret, self.previous_signing_secret)
        return (self.signing_secret,)


@dataclass(frozen=True, slots=True)
class HookDefinition:
    """One project hook a template makes in every project it is applied to.

    ``hook_id`` names the hook in the project (``…/projects/{p}/hooks/{hook_id}``); the rest is
    copied into it, and every copy gets a signing secret of its own.
    """

    hook_id: str
    display_name: str
    destination_url: str
    authorization_header: str = field(repr=False)  # a secret: sealed at rest, masked on reads
    payload_format: str
    triggers: tuple[tuple[str, str], ...]  # (resource_name, event_type), project-level resources
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    ordering: Ordering = Ordering.UNORDERED
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    signing_disabled: bool = False


@dataclass(frozen=True, slots=True)
class Template:
    """A company's project template: the hooks each project made from it starts with.

    ``revision`` starts at 1 and grows by one with every update; a hook made from it records
    the revision it copied.
    """

    name: str
    company_id: int
    display_name: str
    hooks: tuple[HookDefinition, ...]
    revision: int
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True, slots=True)
class Trigger:
    """One selected event of a hook: a resource and one of its event types."""

    name: str
    resource_name: str
    event_type: str
    create_time: datetime

    @property
    def hook_name(self) -> str:
        return self.name.rsplit("/triggers/", 1)[0]


@dataclass(frozen=True, slots=True)
class EventMetadata:
    """Where a change came from; every field is optional, as in Procore's payloads."""

    source_user_id: int | None = None
    source_project_id: int | None = None
    source_operation_id: int | None = None
    source_company_id: int | None = None
    source_application_id: str | None = None


@dataclass(frozen=True, slots=True)
class RelatedResource:
    """A resource linked to the changed one (Procore v3 ``related_resources``)."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class Event:
    """A change to one resource, as published by an internal service.

    ``id`` is a ULID (26 characters, Crockford base32) and is what receivers de-duplicate on;
    ``serial`` is a store-assigned positive integer for formats that need a numeric id.
    ``project_id`` is None for company-level resources.
    """

    id: str
    serial: int
    timestamp: datetime
    company_id: int
    project_id: int | None
    user_id: int
    resource_name: str
    resource_id: int
    event_type: str
    metadata: EventMetadata = field(default_factory=EventMetadata)
    related_resources: tuple[RelatedResource, ...] = ()
    idempotency_key: str = ""
    traceparent: str = ""  # W3C trace context of the publisher, which delivery attempts continue
    # A hash of the event as its publisher sent it, kept with its idempotency key, so a key
    # reused for a different event is told apart from a retry (domain/events.py makes it).
    idempotency_fingerprint: str = ""

    @property
    def scope(self) -> Scope:
        return Scope.COMPANY if self.project_id is None else Scope.PROJECT


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A resource a catalog lists: its name, scope and the event types it reports.

    ``payload_formats`` restricts which formats may select it; None means every format.
    """

    name: str
    scope: Scope
    event_types: frozenset[str]
    payload_formats: frozenset[str] | None = None


class DeliveryStatus(enum.Enum):
    """The five statuses admins see for a delivery."""

    QUEUED = "queued"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    DISCARDED = "discarded"


PENDING_STATUSES = frozenset({DeliveryStatus.QUEUED, DeliveryStatus.RETRYING})


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event sent (or to be sent) to one hook.

    The delivery id is the event id, so a delivery is named ``{hook}/deliveries/{event id}``
    and an event reaches each hook at most once per publish. ``first_attempt_time`` starts
    the retry window; ``next_attempt_time`` is when a pending delivery is due.
    """

    name: str
    hook_name: str
    event_id: str
    status: DeliveryStatus
    attempt_count: int
    create_time: datetime
    update_time: datetime
    next_attempt_time: datetime | None
    first_attempt_time: datetime | None = None
    last_error: str = ""
    # Copied from the event and the hook at publish time so history is filtered and scoped
    # without a join; the defaults only serve records built by hand in tests.
    company_id: int = 0
    project_id: int | None = None
    resource_name: str = ""
    resource_id: int = 0
    event_type: str = ""
    # The HTTP status of the last attempt, None when none answered (or none was made).
    last_response_status: int | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP POST of a delivery and what came back; secrets in headers are already masked."""

    number: int
    start_time: datetime
    end_time: datetime
    request_headers: tuple[tuple[str, str], ...]
    response_status: int | None
    response_headers: tuple[tuple[str, str], ...]
    response_body: bytes
    error: str

    @property
    def duration(self) -> timedelta:
        return self.end_time - self.start_time


@dataclass(frozen=True, slots=True)
class RenderedBody:
    """The body a delivery was (or will be) sent with, kept once per delivery for its history."""

    body: bytes
    content_type: str
