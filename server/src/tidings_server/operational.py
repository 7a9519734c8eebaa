"""tidings' events about itself: a hook disabled, a circuit opened or closed, a delivery discarded,
a project template not applied.

They are resources of tidings' own catalog (``tidings``: ``Webhook Hooks``, ``Webhook
Deliveries`` and ``Webhook Templates``, company level), published like any internal service's events, so an admin tells
tidings where to send them the usual way: a company hook (Slack format, say) with triggers such
as ``Webhook Hooks:disabled``. Each event names what it is about in ``related_resources`` (the
hook's or the delivery's full name, with the event's ``resource_id``) and says it comes from
application ``tidings``.

Loops are guarded here: a delivery of an operational event that is discarded is announced by
nobody, so a failing admin hook cannot feed itself. Hook events follow state changes (one per
disabling, opening or closing), never deliveries, so they cannot cascade either; a template
event follows a ``Projects`` × ``create`` event, which an operational event never is.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from tidings_server.domain.events import ApplyTemplate, EventDraft
from tidings_server.domain.model import Event, EventMetadata, Hook, RelatedResource, ResourceType, Scope
from tidings_server.domain.names import Parent
from tidings_server.domain.templates import project_template_name
from tidings_server.plugins.spec import ResourceCatalog, hookimpl

log = logging.getLogger(__name__)

CATALOG = "tidings"
HOOKS = "Webhook Hooks"
DELIVERIES = "Webhook Deliveries"
TEMPLATES = "Webhook Templates"
DISABLED = "disabled"
CIRCUIT_OPENED = "circuit_opened"
CIRCUIT_CLOSED = "circuit_closed"
DISCARDED = "discarded"
NOT_APPLIED = "not_applied"
RESOURCES = frozenset({HOOKS, DELIVERIES, TEMPLATES})
APPLICATION = "tidings"
SYSTEM_USER_ID = 1
"""The user an operational event is by: tidings itself, not a person (events need a user id)."""

Publish = Callable[[Sequence[EventDraft]], Awaitable[object]]


class OperationalCatalog:
    """The ``tidings`` catalog: what tidings reports about its own hooks and deliveries."""

    name: str = CATALOG

    def resources(self) -> tuple[ResourceType, ...]:
        return (
            ResourceType(HOOKS, Scope.COMPANY, frozenset({DISABLED, CIRCUIT_OPENED, CIRCUIT_CLOSED})),
            ResourceType(DELIVERIES, Scope.COMPANY, frozenset({DISCARDED})),
            ResourceType(TEMPLATES, Scope.COMPANY, frozenset({NOT_APPLIED})),
        )


@hookimpl
def tidings_resource_catalogs() -> list[ResourceCatalog]:
    return [OperationalCatalog()]


def hook_number(name: str) -> int:
    """A stable positive id for a hook, or a template (events carry numeric resource ids; hooks
    and templates are known by names)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:6], "big") or 1


def hook_event(hook: Hook, event_type: str, at: datetime) -> EventDraft:
    """``Webhook Hooks`` × ``event_type`` about ``hook``, in its company."""
    number = hook_number(hook.name)
    return _draft(hook.company_id, hook.project_id, HOOKS, event_type, number, at, RelatedResource(number, hook.name))


def discard_event(hook: Hook, delivery_name: str, event: Event, at: datetime) -> EventDraft | None:
    """``Webhook Deliveries`` × ``discarded`` about one delivery; None for a delivery of an
    operational event (the loop guard: its discard is told to nobody)."""
    if event.resource_name in RESOURCES:
        return None
    related = RelatedResource(event.serial, delivery_name)
    return _draft(hook.company_id, hook.project_id, DELIVERIES, DISCARDED, event.serial, at, related)


def template_event(template: str, company_id: int, project_id: int, at: datetime) -> EventDraft:
    """``Webhook Templates`` × ``not_applied``: the template (full name) a ``Projects`` ×
    ``create`` event named was not applied to the new project. Its ``resource_id`` is the
    project's id, as the ``Projects`` event's is; ``related_resources`` name the project and
    the template."""
    project = RelatedResource(project_id, str(Parent(company_id, project_id)))
    related = RelatedResource(hook_number(template), template)
    return _draft(company_id, project_id, TEMPLATES, NOT_APPLIED, project_id, at, project, related)


def telling_template_trouble(apply: ApplyTemplate, announcer: Announcer, now: Callable[[], datetime]) -> ApplyTemplate:
    """``apply`` (the TemplateService's ``Projects`` × ``create`` step), announcing each template
    it could not apply, so the trouble is recorded for admins, not only logged and answered."""

    async def applying(template: str, company_id: int, project_id: int) -> str:
        error = await apply(template, company_id, project_id)
        if error:
            name = project_template_name(template, company_id)
            await announcer.announce(template_event(name, company_id, project_id, now()))
        return error

    return applying


def _draft(
    company_id: int,
    source_project_id: int | None,
    resource: str,
    event_type: str,
    number: int,
    at: datetime,
    *related: RelatedResource,
) -> EventDraft:
    """A company-level event by tidings itself about resource ``number``, naming ``related``
    (the thing itself first); ``source_project_id`` is the project it came from, if any."""
    return EventDraft(
        company_id=company_id,
        project_id=0,
        resource_name=resource,
        resource_id=number,
        event_type=event_type,
        user_id=SYSTEM_USER_ID,
        timestamp=at,
        metadata=EventMetadata(source_project_id=source_project_id, source_application_id=APPLICATION),
        related_resources=related,
    )


class Announcer:
    """Publishes operational events once connected to the event service (``connect``); before
    that, and whenever publishing fails, they are only logged: telling must never stop delivering."""

    def __init__(self) -> None:
        self._publish: Publish | None = None
        self.published = 0

    def connect(self, publish: Publish) -> None:
        self._publish = publish

    async def announce(self, draft: EventDraft | None) -> None:
        if draft is None or self._publish is None:
            return
        try:
            await self._publish([draft])
        except Exception as exc:  # the store away, a catalog without tidings': logged, not raised
            log.warning(
                "operational event not published",
                extra={"resource": draft.resource_name, "event_type": draft.event_type, "error": str(exc)},
            )
            return
        self.published += 1
