"""``tidings publish``: report resource changes as an internal service would, to try hooks out.

Events come from the options (one event) or from a file of JSON lines in the shape of the
API's Event (``company_id``, ``project_id``, ``resource_name``, ``resource_id``,
``event_type``, ``user_id``, optional ``timestamp``, ``idempotency_key``,
``related_resources``, ``metadata``), sent with ``Client.publish`` in batches of 1000, each
event keyed so that a retried batch is not published twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

import click
from rich.text import Text

from tidings_client.cli import params
from tidings_client.cli.app import CONTEXT_SETTINGS, Env, pass_env
from tidings_client.cli.output import table
from tidings_client.types import Event, EventMetadata, RelatedResource

PUBLISH_EXAMPLES = """\b
Examples:
  tidings publish --project 8/6778 --resource RFIs --resource-id 54321 --event-type update --user-id 5447
  tidings publish --company 8 --resource 'Change Types' --resource-id 12 --event-type create --user-id 5447
  tidings publish --file events.jsonl        # one JSON event per line; - reads stdin
"""

_EVENT_KEYS = {
    "company_id",
    "project_id",
    "resource_name",
    "resource_id",
    "event_type",
    "user_id",
    "timestamp",
    "idempotency_key",
    "related_resources",
    "metadata",
}


def event_from_json(data: Any, where: str) -> Event:
    """One event from a JSON object, with a message naming the line for anything wrong."""
    if not isinstance(data, dict):
        raise click.BadParameter(f"{where}: expected a JSON object")
    unknown = set(data) - _EVENT_KEYS
    if unknown:
        raise click.BadParameter(f"{where}: unknown field {sorted(unknown)[0]!r}")
    try:
        metadata = data.get("metadata")
        return Event(
            company_id=int(data["company_id"]),
            project_id=int(data.get("project_id", 0)),
            resource_name=str(data["resource_name"]),
            resource_id=int(data["resource_id"]),
            event_type=str(data["event_type"]),
            user_id=int(data["user_id"]),
            timestamp=params.parse_time(data["timestamp"]) if data.get("timestamp") else None,
            idempotency_key=str(data.get("idempotency_key", "")),
            related_resources=tuple(
                RelatedResource(id=int(r["id"]), name=str(r["name"])) for r in data.get("related_resources", ())
            ),
            metadata=EventMetadata(**metadata) if metadata is not None else None,
        )
    except KeyError as exc:
        raise click.BadParameter(f"{where}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(f"{where}: {exc}") from None


def events_from_lines(stream: IO[str]) -> Iterator[Event]:
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise click.BadParameter(f"line {number}: not JSON ({exc})", param_hint="--file") from None
        yield event_from_json(data, f"line {number}")


@click.command(context_settings=CONTEXT_SETTINGS, epilog=PUBLISH_EXAMPLES)
@click.option("--project", type=params.PROJECT, help="A project-level event of COMPANY/PROJECT.")
@click.option("--company", type=params.COMPANY, help="A company-level event of COMPANY.")
@click.option("--resource", "resource_name", help="The resource as the catalog names it, e.g. RFIs.")
@click.option("--resource-id", type=click.IntRange(min=1))
@click.option("--event-type", help="create, update, delete, … as the resource supports.")
@click.option("--user-id", type=click.IntRange(min=1), help="Who made the change.")
@click.option("--idempotency-key", default="", help="Publishing the same key again creates nothing.")
@click.option("--file", "file", type=click.File("r"), help="JSON lines, one event each (- for stdin).")
@pass_env
def publish(
    env: Env,
    project: str | None,
    company: str | None,
    resource_name: str | None,
    resource_id: int | None,
    event_type: str | None,
    user_id: int | None,
    idempotency_key: str,
    file: IO[str] | None,
) -> None:
    """Publish events to the server, as an internal service does: one from the options, or many from --file."""
    if file is not None:
        if any(v is not None for v in (project, company, resource_name, resource_id, event_type, user_id)):
            raise click.UsageError("give --file or the event's options, not both")
        events: Any = events_from_lines(file)
    else:
        if (project is None) == (company is None):
            raise click.UsageError("give exactly one of --project COMPANY/PROJECT or --company COMPANY, or --file")
        missing = [
            flag
            for flag, value in (
                ("--resource", resource_name),
                ("--resource-id", resource_id),
                ("--event-type", event_type),
                ("--user-id", user_id),
            )
            if value is None
        ]
        if missing:
            raise click.UsageError(f"missing {', '.join(missing)}")
        if project and project.endswith("/-"):
            raise click.UsageError("--project needs one project, not '-'")
        ids = (project or company or "").split("/")
        events = [
            Event(
                company_id=int(ids[1]),
                project_id=int(ids[3]) if project else 0,
                resource_name=resource_name or "",
                resource_id=resource_id or 0,
                event_type=event_type or "",
                user_id=user_id or 0,
                idempotency_key=idempotency_key,
            )
        ]
    results = env.client().publish(events)
    if env.out.as_json:
        env.out.json(results)
        return
    t = table("EVENT ID", "DELIVERIES", "DUPLICATE", "IDEMPOTENCY KEY")
    for r in results:
        t.add_row(r.event_id, str(r.deliveries), "yes" if r.duplicate else "", r.idempotency_key)
    env.out.print(t)
    env.out.note(f"{len(results)} event(s) published")
    if not results:
        env.out.print(Text("nothing to publish", style="yellow"))
