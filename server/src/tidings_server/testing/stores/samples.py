"""Sample records for the store tests: hooks, triggers and events with every field set plainly."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from tidings_server.domain.model import Event, Hook, HookStatus, Trigger
from tidings_server.domain.names import parse_hook_name, trigger_name

# Sample times carry microseconds, so a backend that rounds them fails the equality checks.
T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1, microseconds=1)
T2 = T0 + timedelta(minutes=5, microseconds=7)
MICROSECOND = timedelta(microseconds=1)


def make_hook(name: str = "companies/1/hooks/h", *, at: datetime = T0, **changes: Any) -> Hook:
    """A hook called ``name``, its company and project taken from the name."""
    parent, _ = parse_hook_name("name", name)
    hook = Hook(
        name=name,
        company_id=parent.company_id,
        project_id=parent.project_id,
        display_name="Deliveries",
        destination_url="https://receiver.example.com/hooks",
        authorization_header="Bearer s3cret-token",
        payload_format="procore.v4",
        status=HookStatus.ACTIVE,
        create_time=at,
        update_time=at,
    )
    return dataclasses.replace(hook, **changes)


def make_trigger(hook: str, resource: str = "Projects", event: str = "create", *, at: datetime = T0) -> Trigger:
    return Trigger(name=trigger_name(hook, resource, event), resource_name=resource, event_type=event, create_time=at)


_ULID_DIGITS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def event_id(n: int) -> str:
    """A well-formed ULID that sorts by ``n``."""
    digits = ""
    for _ in range(26):
        n, digit = divmod(n, 32)
        digits = _ULID_DIGITS[digit] + digits
    return "01" + digits[2:]


def make_event(
    n: int,
    *,
    company: int = 1,
    project: int | None = 2,
    resource: str = "Projects",
    resource_id: int = 100,
    event: str = "create",
    **changes: Any,
) -> Event:
    """Event number ``n`` (its id sorts by ``n``), a change of one resource."""
    sample = Event(
        id=event_id(n),
        serial=0,
        timestamp=T0 - timedelta(seconds=n),
        company_id=company,
        project_id=project,
        user_id=7,
        resource_name=resource,
        resource_id=resource_id,
        event_type=event,
    )
    return dataclasses.replace(sample, **changes)
