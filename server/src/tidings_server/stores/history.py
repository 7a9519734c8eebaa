"""How a history query walks the deliveries: which range, in which order, narrowed by what.

Every backend plans a ``DeliveryQuery`` with ``plan``, so for one query they examine the same
deliveries in the same order and return the same pages, ``next_after`` included: a backend
only differs in how it finds them (SQLite maps each ``Access`` to one index).

A walk goes newest first, by descending (event id, name). Under a hook it may be narrowed by
one criterion that an index orders by event id: a resource id (the most selective), else the
statuses (one range per status, merged). Under a project or a company it is every delivery
of the scope. Whatever the walk does not narrow by is checked on each delivery it examines
(``matches``), within the scan budget.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tidings_server.domain import filtering
from tidings_server.domain.model import Delivery, DeliveryStatus
from tidings_server.domain.ports import DeliveryQuery, filter_record

ALL_STATUSES = frozenset(DeliveryStatus)


class Access(enum.Enum):
    """The range of deliveries a walk goes through."""

    HOOK = "hook"
    HOOK_RESOURCE_ID = "hook_resource_id"
    HOOK_STATUS = "hook_status"
    PROJECT = "project"
    COMPANY = "company"


@dataclass(frozen=True, slots=True)
class Walk:
    """A planned walk: its access, and for HOOK_STATUS the statuses merged, in value order."""

    access: Access
    statuses: tuple[DeliveryStatus, ...] = ()


def check(query: DeliveryQuery) -> None:
    """Refuse a query without a parent: a history is always of a hook, a project or a company."""
    if query.hook_name is None and query.company_id is None:
        raise ValueError("a delivery query needs a hook_name or a company_id")


def effective_statuses(query: DeliveryQuery) -> frozenset[DeliveryStatus]:
    """The statuses that narrow the query; every status is as good as none."""
    return frozenset() if query.statuses >= ALL_STATUSES else query.statuses


def plan(query: DeliveryQuery) -> Walk:
    check(query)
    if query.hook_name is None:
        return Walk(Access.COMPANY if query.project_id is None else Access.PROJECT)
    if query.resource_id is not None:
        return Walk(Access.HOOK_RESOURCE_ID)
    statuses = effective_statuses(query)
    if statuses:
        return Walk(Access.HOOK_STATUS, tuple(sorted(statuses, key=lambda s: s.value)))
    return Walk(Access.HOOK)


def in_walk(query: DeliveryQuery, walk: Walk, delivery: Delivery) -> bool:
    """Whether the walk goes through ``delivery`` (it is under the parent and in the range)."""
    if walk.access is Access.COMPANY:
        return delivery.company_id == query.company_id
    if walk.access is Access.PROJECT:
        return delivery.company_id == query.company_id and delivery.project_id == query.project_id
    if delivery.hook_name != query.hook_name:
        return False
    if walk.access is Access.HOOK_RESOURCE_ID:
        return delivery.resource_id == query.resource_id
    if walk.access is Access.HOOK_STATUS:
        return delivery.status in walk.statuses
    return True


def matches(query: DeliveryQuery, delivery: Delivery) -> bool:
    """Whether ``delivery`` meets every criterion of ``query`` other than its parent."""
    statuses = effective_statuses(query)
    if statuses and delivery.status not in statuses:
        return False
    if query.resource_name is not None and delivery.resource_name != query.resource_name:
        return False
    if query.resource_id is not None and delivery.resource_id != query.resource_id:
        return False
    if query.event_type is not None and delivery.event_type != query.event_type:
        return False
    if query.start_time is not None and delivery.create_time < query.start_time:
        return False
    if query.end_time is not None and delivery.create_time >= query.end_time:
        return False
    return filtering.evaluate(query.filter, filter_record(delivery))


def order_key(delivery_name: str) -> tuple[str, str]:
    """A delivery's place in history order, from its name ``{hook}/deliveries/{event id}``:
    (event id, name), descending."""
    return delivery_name.rsplit("/", 1)[-1], delivery_name


def succeeded(response_status: int | None) -> bool:
    """Whether an attempt counts as a success for its hook's health: any 2xx answer."""
    return response_status is not None and 200 <= response_status <= 299
