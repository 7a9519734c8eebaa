"""A template's hook definitions as one JSON text, the form the SQL backends keep them in.

Definitions are read and written whole with their template (a template holds a handful), so a
column of JSON keeps the schema to one table in every backend. Authorization headers arrive
here already sealed (``stores.sealed``), so the text holds no secret in plaintext.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from tidings_server.domain.model import HookDefinition, Ordering, RetryPolicy, Template

_MICROSECOND = timedelta(microseconds=1)


def _policy(policy: RetryPolicy) -> dict[str, Any]:
    return {
        "timeout_us": policy.timeout // _MICROSECOND,
        "retry_window_us": policy.retry_window // _MICROSECOND,
        "initial_backoff_us": policy.initial_backoff // _MICROSECOND,
        "max_backoff_us": policy.max_backoff // _MICROSECOND,
        "retryable_statuses": sorted(policy.retryable_statuses),
    }


def definitions_text(definitions: tuple[HookDefinition, ...]) -> str:
    """The JSON text of ``definitions``, in their order."""
    return json.dumps(
        [
            {
                "hook_id": d.hook_id,
                "display_name": d.display_name,
                "destination_url": d.destination_url,
                "authorization_header": d.authorization_header,
                "payload_format": d.payload_format,
                "triggers": [list(pair) for pair in d.triggers],
                "retry_policy": _policy(d.retry_policy),
                "ordering": d.ordering.value,
                "max_concurrency": d.max_concurrency,
                "signing_disabled": d.signing_disabled,
            }
            for d in definitions
        ],
        separators=(",", ":"),
    )


def definitions(text: str) -> tuple[HookDefinition, ...]:
    """The definitions ``definitions_text`` wrote."""
    found = []
    for d in json.loads(text):
        p = d["retry_policy"]
        found.append(
            HookDefinition(
                hook_id=d["hook_id"],
                display_name=d["display_name"],
                destination_url=d["destination_url"],
                authorization_header=d["authorization_header"],
                payload_format=d["payload_format"],
                triggers=tuple((r, e) for r, e in d["triggers"]),
                retry_policy=RetryPolicy(
                    timeout=timedelta(microseconds=p["timeout_us"]),
                    retry_window=timedelta(microseconds=p["retry_window_us"]),
                    initial_backoff=timedelta(microseconds=p["initial_backoff_us"]),
                    max_backoff=timedelta(microseconds=p["max_backoff_us"]),
                    retryable_statuses=frozenset(p["retryable_statuses"]),
                ),
                ordering=Ordering(d["ordering"]),
                max_concurrency=d["max_concurrency"],
                signing_disabled=d["signing_disabled"],
            )
        )
    return tuple(found)


def template_row(template: Template, time: Callable[[str, datetime], Any]) -> tuple[Any, ...]:
    """(name, company_id, display_name, hooks, revision, create_time, update_time), each time
    as ``time(field, value)`` writes it for the backend."""
    return (
        template.name,
        template.company_id,
        template.display_name,
        definitions_text(template.hooks),
        template.revision,
        time("create_time", template.create_time),
        time("update_time", template.update_time),
    )


def template(row: Sequence[Any], time: Callable[[Any], datetime]) -> Template:
    """The template of a row ``template_row`` wrote, its times read back by ``time``."""
    name, company_id, display_name, hooks, revision, created, updated = row
    return Template(name, company_id, display_name, definitions(hooks), revision, time(created), time(updated))
