"""Plain Python values for everything the API returns, so callers never handle protobuf messages.

Every value is a frozen dataclass; times are aware datetimes in UTC and spans are timedeltas.
Enumerations are ``StrEnum``s whose values are the lowercase names the CLI and JSON use.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class HookStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DISABLED = "disabled"


class DeliveryOrdering(enum.StrEnum):
    UNORDERED = "unordered"
    PER_RESOURCE = "per_resource"


class Scope(enum.StrEnum):
    COMPANY = "company"
    PROJECT = "project"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    DISCARDED = "discarded"

    @property
    def pending(self) -> bool:
        """Still waiting for an attempt: redelivery leaves these alone."""
        return self in (DeliveryStatus.QUEUED, DeliveryStatus.RETRYING)


class Role(enum.StrEnum):
    """What a token's holder may do (docs/security.md has the table)."""

    OWNER = "owner"
    ADMIN = "admin"
    VIEWER = "viewer"
    PUBLISHER = "publisher"


class DeliveryView(enum.StrEnum):
    BASIC = "basic"
    FULL = "full"


@dataclass(frozen=True)
class StatusRange:
    """HTTP statuses ``first`` to ``last`` inclusive."""

    first: int
    last: int

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class RetryPolicy:
    """A hook's retry settings; ``None`` (on input) leaves the server default."""

    timeout: timedelta | None = None
    retry_window: timedelta | None = None
    initial_backoff: timedelta | None = None
    max_backoff: timedelta | None = None
    retryable_statuses: tuple[StatusRange, ...] = ()


@dataclass(frozen=True)
class RateLimit:
    """At most ``per_second`` deliveries a second to a hook, in bursts of up to ``burst``;
    ``RateLimit.per_minute(1000)`` is Convoy's default. On update, ``per_second=0`` removes it."""

    per_second: float
    burst: int = 1

    @classmethod
    def per_minute(cls, count: float, burst: int = 1) -> RateLimit:
        return cls(count / 60, burst)


@dataclass(frozen=True)
class Hook:
    name: str
    display_name: str
    destination_url: str
    # Masked on reads (at most the token's last 4 characters, none of a token shorter than 16);
    # the full value is only ever sent.
    authorization_header: str
    payload_format: str
    status: HookStatus
    create_time: datetime | None
    update_time: datetime | None
    retry_policy: RetryPolicy
    ordering: DeliveryOrdering
    max_concurrency: int
    # True for a hook created with signing off, and for one stored before signing existed
    # until a rotation gives it a secret.
    signing_disabled: bool
    # The secret deliveries are signed with (``whsec_…``). The server sends it only in the
    # answers of create_hook and rotate_signing_secret, so it is empty everywhere else.
    signing_secret: str
    # While a rotation's overlap lasts, deliveries also carry a signature from the previous
    # secret until this time; None otherwise.
    previous_secret_expire_time: datetime | None
    rate_limit: RateLimit | None = None  # None: no limit
    # Why and since when tidings itself disabled the hook (410 Gone, failing for too long);
    # empty and None when it did not.
    disabled_reason: str = ""
    disable_time: datetime | None = None
    # A company hook's projects: the only ones whose project-level events it receives; empty
    # means every project of its company.
    projects: tuple[int, ...] = ()
    # The template the hook was made from ("" for a hook made by hand) and its revision then.
    template: str = ""
    template_revision: int = 0


@dataclass(frozen=True)
class Trigger:
    name: str
    resource_name: str
    event_type: str
    create_time: datetime | None = None


@dataclass(frozen=True)
class CatalogResource:
    resource_name: str
    scope: Scope
    event_types: tuple[str, ...]
    catalog: str
    # The levels of the hooks that may select it (a company hook may select project resources).
    hook_scopes: tuple[Scope, ...] = ()


@dataclass(frozen=True)
class PayloadFormat:
    name: str
    description: str
    content_type: str
    distribution: str
    version: str


@dataclass(frozen=True)
class EventMetadata:
    source_user_id: int | None = None
    source_project_id: int | None = None
    source_operation_id: int | None = None
    source_company_id: int | None = None
    source_application_id: str | None = None


@dataclass(frozen=True)
class RelatedResource:
    id: int
    name: str


@dataclass(frozen=True)
class Event:
    """One change to one resource: what a service publishes and what a delivery carries.

    ``id`` is assigned by the server; leave it empty when publishing. ``project_id`` is 0 for
    company-level resources.
    """

    company_id: int
    resource_name: str
    resource_id: int
    event_type: str
    user_id: int
    project_id: int = 0
    timestamp: datetime | None = None
    metadata: EventMetadata | None = None
    related_resources: tuple[RelatedResource, ...] = ()
    idempotency_key: str = ""
    id: str = ""


@dataclass(frozen=True)
class PublishedEvent:
    event_id: str
    deliveries: int
    duplicate: bool
    idempotency_key: str = ""
    # Why the project template a Projects create event named was not applied ("" when it was).
    project_template_error: str = ""


@dataclass(frozen=True)
class Header:
    name: str
    value: str


@dataclass(frozen=True)
class Attempt:
    number: int
    start_time: datetime | None
    end_time: datetime | None
    request_headers: tuple[Header, ...]
    response_status: int
    response_headers: tuple[Header, ...]
    response_body: bytes
    error: str


@dataclass(frozen=True)
class Delivery:
    name: str
    hook: str
    status: DeliveryStatus
    event: Event | None
    attempt_count: int
    create_time: datetime | None
    update_time: datetime | None
    next_attempt_time: datetime | None
    last_error: str
    last_response_status: int
    # FULL view only.
    body: bytes = b""
    content_type: str = ""
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class HookOverview:
    hook: Hook
    queued_count: int
    retrying_count: int
    delivered_count: int
    failed_count: int
    discarded_count: int
    success_rate: float
    latency_p50: timedelta | None
    latency_p95: timedelta | None
    last_success_time: datetime | None
    last_failure_time: datetime | None
    last_failure_reason: str
    consecutive_failures: int
    next_retry_time: datetime | None
    # The last time the rate limit held a delivery back: the limit is being hit while recent.
    rate_limited_time: datetime | None = None
    # The answering server's circuit breaker for the hook: when it opened, when it probes next.
    circuit_open_time: datetime | None = None
    next_probe_time: datetime | None = None
    # The project the counts, success rate and next retry are narrowed to; 0 for the whole hook.
    project_id: int = 0


@dataclass(frozen=True)
class DeliveryChange:
    delivery: Delivery
    change_time: datetime | None
    resume_token: str


@dataclass(frozen=True)
class RedeliverResult:
    queued_count: int
    names: tuple[str, ...]
    # More deliveries matched than the limit allowed; call again for the next ones.
    more: bool


@dataclass(frozen=True)
class EndpointTestResult:
    response_status: int
    latency: timedelta | None
    response_excerpt: bytes
    error: str
    request_headers: tuple[Header, ...]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.response_status < 300 and not self.error


@dataclass(frozen=True)
class DeliveryFilter:
    """The structured filters of ListDeliveries; each unset one matches everything.

    ``filter`` is an AIP-160 expression ANDed with the others.
    """

    resource_id: int = 0
    resource_name: str = ""
    statuses: tuple[DeliveryStatus, ...] = ()
    event_type: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    filter: str = ""


@dataclass(frozen=True)
class HookChanges:
    """The fields UpdateHook should change; ``None`` leaves a field as it is.

    ``authorization_header=""`` removes the header. ``retry_policy`` replaces the whole policy.
    ``signing_disabled=False`` turns signing back on, which the server refuses for a hook that
    has no secret yet (one stored before signing existed): ``rotate_signing_secret`` first.
    ``projects=()`` lets a company hook receive every project's events again.
    """

    display_name: str | None = None
    destination_url: str | None = None
    authorization_header: str | None = None
    status: HookStatus | None = None
    retry_policy: RetryPolicy | None = None
    ordering: DeliveryOrdering | None = None
    max_concurrency: int | None = None
    signing_disabled: bool | None = None
    rate_limit: RateLimit | None = None  # RateLimit(0) removes the limit
    projects: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Token:
    """A bearer token: ``secret`` is set only in what ``create_token`` returns, the one time it
    is ever shown; ``scope`` is ``all``, ``companies/{c}`` or ``companies/{c}/projects/{p}``.
    A principal bound to mutual-TLS client certificates has ``client_cert_name`` and no secret."""

    name: str
    display_name: str
    role: Role
    scope: str
    create_time: datetime | None
    last_used_time: datetime | None = None
    revoke_time: datetime | None = None
    secret: str = ""
    client_cert_name: str = ""


@dataclass(frozen=True)
class HookDefinition:
    """One project hook a template makes in each project it is applied to, as ``hook_id``.

    ``events`` are (resource, event type) pairs of project-level resources. On reads the
    Authorization header is masked, as a hook's is.
    """

    hook_id: str
    destination_url: str
    payload_format: str
    events: tuple[tuple[str, str], ...] = ()
    display_name: str = ""
    authorization_header: str = ""
    retry_policy: RetryPolicy | None = None
    ordering: DeliveryOrdering | None = None
    max_concurrency: int | None = None
    signing_disabled: bool = False


@dataclass(frozen=True)
class Template:
    name: str
    display_name: str
    hooks: tuple[HookDefinition, ...]
    # 1 at creation, one more with every update; hooks made from it record the one they copied.
    revision: int
    create_time: datetime | None
    update_time: datetime | None


@dataclass(frozen=True)
class AppliedTemplate:
    """What applying a template to a project did.

    ``created`` carry their signing secrets: this is the only time they are shown.
    ``existing`` are the hooks an earlier apply made, left as they were; ``already_applied``
    is True when nothing was created because every hook existed.
    """

    created: tuple[Hook, ...]
    existing: tuple[str, ...]
    already_applied: bool
    revision: int
