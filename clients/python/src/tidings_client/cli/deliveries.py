"""``tidings deliveries``: the delivery history, one delivery's details, redelivery, and a live watch."""

from __future__ import annotations

import itertools
import json
import sys
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

import click
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from tidings_client.cli import params
from tidings_client.cli.app import CONTEXT_SETTINGS, Env, pass_env
from tidings_client.cli.output import fields_table, status_text, table, when
from tidings_client.types import Delivery, DeliveryChange, DeliveryFilter, DeliveryStatus

STATUS_CHOICE = click.Choice([s.value for s in DeliveryStatus])


@click.group(
    context_settings=CONTEXT_SETTINGS,
    epilog="\b\nExamples:\n  tidings deliveries list HOOK --status failed\n  tidings deliveries watch HOOK",
)
def deliveries() -> None:
    """The 28-day history of what was sent where, and sending again.

    PARENT is a hook (…/hooks/H: its deliveries), a project (companies/C/projects/P: the
    deliveries of its hooks) or a company (companies/C: all of them). Without PARENT the
    profile's `parent` is used. A delivery is named HOOK/deliveries/EVENT_ID.
    """


def delivery_row(d: Delivery) -> list[str | Text]:
    e = d.event
    return [
        d.name.rsplit("/", 1)[-1],
        when(d.create_time),
        status_text(d.status),
        e.resource_name if e else "-",
        str(e.resource_id) if e else "-",
        e.event_type if e else "-",
        str(d.attempt_count),
        str(d.last_response_status or "-"),
        d.last_error or "",
    ]


DELIVERY_COLUMNS = ("EVENT ID", "CREATED", "STATUS", "RESOURCE", "RESOURCE ID", "EVENT", "TRIES", "HTTP", "ERROR")

LIST_EXAMPLES = """\b
Examples:
  tidings deliveries list HOOK
  tidings deliveries list companies/8/projects/6778 --resource-id 54321
  tidings deliveries list HOOK --resource-name RFIs --status failed --status discarded
  tidings deliveries list HOOK --since 2h --event-type delete
  tidings deliveries list HOOK --filter 'response_status >= 500 AND attempt_count > 3'
  tidings --json deliveries list HOOK --all | jq -r '.[].name'
"""


@deliveries.command("list", epilog=LIST_EXAMPLES)
@click.argument("parent", required=False)
@click.option("--resource-id", type=click.IntRange(min=1), help="Only events about this resource id.")
@click.option("--resource-name", default="", help="Only events about this resource, e.g. RFIs.")
@click.option("--status", "statuses", type=STATUS_CHOICE, multiple=True, help="Only this status; repeatable.")
@click.option("--event-type", default="", help="Only this event type, e.g. update.")
@click.option("--since", type=params.TIME, help="Created at or after: RFC 3339 time, date, or a span ago (2h, 7d).")
@click.option("--until", type=params.TIME, help="Created before: RFC 3339 time, date, or a span ago.")
@click.option("--filter", "expr", default="", help="An AIP-160 filter, ANDed with the options above.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show at most this many.")
@click.option("--all", "everything", is_flag=True, help="Show every match (no --limit).")
@pass_env
def list_(
    env: Env,
    parent: str | None,
    resource_id: int | None,
    resource_name: str,
    statuses: tuple[str, ...],
    event_type: str,
    since: datetime | None,
    until: datetime | None,
    expr: str,
    limit: int,
    everything: bool,
) -> None:
    """Deliveries under PARENT, newest first, narrowed by the options."""
    where = DeliveryFilter(
        resource_id=resource_id or 0,
        resource_name=resource_name,
        statuses=tuple(DeliveryStatus(s) for s in statuses),
        event_type=event_type,
        start_time=since,
        end_time=until,
        filter=expr,
    )
    parent = env.parent(parent)
    page_size = 1000 if everything else min(limit + 1, 1000)
    found = env.client().list_deliveries(parent, where, page_size=page_size)
    shown = list(found if everything else itertools.islice(found, limit + 1))
    more = not everything and len(shown) > limit
    shown = shown[:limit] if more else shown
    if env.out.as_json:
        env.out.json(shown)
        return
    t = table(*DELIVERY_COLUMNS)
    for d in shown:
        t.add_row(*delivery_row(d))
    env.out.print(t)
    env.out.note(
        f"{len(shown)} deliver{'y' if len(shown) == 1 else 'ies'}" + (" (more: --limit N or --all)" if more else "")
    )


def body_view(body: bytes, content_type: str) -> Syntax | Text:
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            return Syntax(json.dumps(json.loads(text), indent=2), "json", word_wrap=True)
        except ValueError:
            pass
    return Text(text)


def delivery_view(d: Delivery) -> Group:
    e = d.event
    parts: list[object] = [
        fields_table(
            [
                ("name", d.name),
                ("hook", d.hook),
                ("status", status_text(d.status)),
                ("created", when(d.create_time)),
                ("updated", when(d.update_time)),
                ("next attempt", when(d.next_attempt_time)),
                ("attempts", d.attempt_count),
                ("last http status", d.last_response_status or "-"),
                ("last error", d.last_error or "-"),
            ]
        )
    ]
    if e is not None:
        rows: list[tuple[str, object]] = [
            ("event id", e.id),
            ("resource", f"{e.resource_name} {e.resource_id}"),
            ("event type", e.event_type),
            ("company / project", f"{e.company_id} / {e.project_id or '-'}"),
            ("user", e.user_id),
            ("timestamp", when(e.timestamp)),
        ]
        if e.related_resources:
            rows.append(("related", ", ".join(f"{r.name} {r.id}" for r in e.related_resources)))
        parts += [Text("\nEvent", style="bold underline"), fields_table(rows)]
    if d.attempts:
        t = table("#", "STARTED", "TOOK", "HTTP", "ERROR", title="\nAttempts")
        for a in d.attempts:
            took = f"{(a.end_time - a.start_time).total_seconds() * 1000:.0f}ms" if a.start_time and a.end_time else "-"
            t.add_row(str(a.number), when(a.start_time), took, status_http(a.response_status), a.error)
        parts.append(t)
        last = d.attempts[-1]
        if last.request_headers:
            parts += [Text("\nRequest headers (last attempt)", style="bold underline")]
            parts.append(fields_table((h.name, h.value) for h in last.request_headers))
        if last.response_body:
            parts += [
                Text("\nResponse (last attempt)", style="bold underline"),
                Text(last.response_body.decode("utf-8", "replace")),
            ]
    if d.body:
        parts += [
            Text(f"\nBody ({d.content_type or 'unknown type'})", style="bold underline"),
            body_view(d.body, d.content_type),
        ]
    return Group(*parts)  # type: ignore[arg-type]


def status_http(code: int) -> Text:
    if not code:
        return Text("-")
    return Text(str(code), style="green" if 200 <= code < 300 else "red")


SHOW_EXAMPLES = """\b
Examples:
  tidings deliveries show companies/8/projects/6778/hooks/procore-sync/deliveries/01JD…
  tidings --json deliveries show NAME | jq -r .body | base64 -d
"""


@deliveries.command(epilog=SHOW_EXAMPLES)
@click.argument("name")
@pass_env
def show(env: Env, name: str) -> None:
    """One delivery: its event, every attempt with headers and response, and the body as sent."""
    d = env.client().get_delivery(name)
    if env.out.as_json:
        env.out.json(d)
    else:
        env.out.print(delivery_view(d))


REDELIVER_EXAMPLES = """\b
Examples:
  tidings deliveries redeliver HOOK/deliveries/01JD…
  tidings deliveries redeliver --parent HOOK --status failed --status discarded
  tidings deliveries redeliver --parent companies/8/projects/6778 --filter 'resource_name = "RFIs"' --yes
"""


@deliveries.command(epilog=REDELIVER_EXAMPLES)
@click.argument("name", required=False)
@click.option("--parent", help="Queue again the deliveries under this hook, project or company that match.")
@click.option("--status", "statuses", type=STATUS_CHOICE, multiple=True, help="Only this status; repeatable.")
@click.option("--filter", "expr", default="", help="An AIP-160 filter, as in `deliveries list --filter`.")
@click.option("--max", "maximum", type=click.IntRange(min=1), help="Queue at most this many in all.")
@click.option("--batch", type=click.IntRange(1, 1000), default=100, show_default=True, help="How many per call.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before a filtered redelivery.")
@pass_env
def redeliver(
    env: Env,
    name: str | None,
    parent: str | None,
    statuses: tuple[str, ...],
    expr: str,
    maximum: int | None,
    batch: int,
    yes: bool,
) -> None:
    """Queue deliveries again: NAME, or every non-pending one under --parent (default: the
    profile's parent) matching the filter.

    Earlier attempts are kept. Pending (queued or retrying) deliveries are left alone, and
    deliveries of disabled or deleted hooks are skipped.
    """
    client = env.client()
    if name is not None and parent is not None:
        raise click.UsageError("give a delivery NAME or --parent (with --status/--filter), not both")
    if name is not None:
        if statuses or expr or maximum:
            raise click.UsageError("--status, --filter and --max go with --parent")
        result = client.redeliver(name)
        if env.out.as_json:
            env.out.json(result)
        else:
            env.out.print(Text("queued ", style="cyan") + Text(name))
        return
    parent = env.parent(parent, "a delivery NAME or --parent")
    clauses = [" OR ".join(f'status = "{s}"' for s in statuses)] if statuses else []
    if expr:
        clauses.append(expr)
    combined = " AND ".join(f"({c})" for c in clauses) if len(clauses) > 1 else "".join(clauses)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("not redelivering by filter without confirmation: add --yes")
        click.confirm(f"Queue again the deliveries under {parent} matching {combined or 'anything'}?", abort=True)
    names: list[str] = []
    seen: set[str] = set()
    more = True
    with Progress(
        SpinnerColumn(),
        TextColumn("queued"),
        BarColumn(),
        MofNCompleteColumn() if maximum else TextColumn("{task.completed}"),
        TimeElapsedColumn(),
        console=env.out.err,
        transient=env.out.as_json,
        disable=not env.out.err.is_terminal,
    ) as progress:
        task = progress.add_task("redeliver", total=maximum)
        while more and (maximum is None or len(names) < maximum):
            limit = batch if maximum is None else min(batch, maximum - len(names))
            result = client.redeliver_matching(parent, combined, limit=limit)
            fresh = [n for n in result.names if n not in seen]
            # Deliveries redelivered quickly can match again (e.g. status = "delivered"); stop
            # rather than send them round forever.
            if not fresh:
                break
            seen.update(fresh)
            names += fresh
            more = result.more
            progress.update(task, completed=len(names))
    if env.out.as_json:
        env.out.json({"queued_count": len(names), "names": names, "more": more})
    else:
        env.out.print(Text(f"queued {len(names)} deliver{'y' if len(names) == 1 else 'ies'} again", style="cyan"))
        if more:
            env.out.note("more match: run it again, or raise --max")


def watch_table(latest: Sequence[DeliveryChange], title: str) -> Table:
    t = table("CHANGED", *DELIVERY_COLUMNS, title=title)
    for c in latest:
        t.add_row(when(c.change_time), *delivery_row(c.delivery))
    return t


WATCH_EXAMPLES = """\b
Examples:
  tidings deliveries watch HOOK
  tidings deliveries watch companies/8/projects/6778 --status failed --status discarded
  tidings --json deliveries watch HOOK --count 10      # one JSON object per line
"""


@deliveries.command(epilog=WATCH_EXAMPLES)
@click.argument("parent", required=False)
@click.option("--status", "statuses", type=STATUS_CHOICE, multiple=True, help="Only changes to this status.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many changes.")
@click.option("--resume-token", default="", help="Continue after the change that carried this token.")
@click.option("--rows", type=click.IntRange(min=1), default=20, show_default=True, help="Rows in the live table.")
@pass_env
def watch(
    env: Env, parent: str | None, statuses: tuple[str, ...], count: int | None, resume_token: str, rows: int
) -> None:
    """Deliveries under PARENT as they change, in a live table (newest first) until Ctrl-C.

    A dropped connection is resumed from the last change seen, so nothing is missed. When
    the output is not a terminal, each change is printed as a line; with --json, as one
    JSON object per line, whose resume_token can restart a later watch.
    """
    parent = env.parent(parent)
    changes = env.client().watch(parent, statuses=[DeliveryStatus(s) for s in statuses], resume_token=resume_token)
    stream = itertools.islice(changes, count) if count else changes
    try:
        if env.out.as_json:
            for c in stream:
                env.out.json(c, compact=True)
        elif not env.out.console.is_terminal:
            for c in stream:
                env.out.console.print(*(str(x) for x in [when(c.change_time), *delivery_row(c.delivery)]))
        else:
            latest: OrderedDict[str, DeliveryChange] = OrderedDict()
            title = f"Watching {parent} (Ctrl-C to stop)"
            with Live(watch_table([], title), console=env.out.console, refresh_per_second=8) as live:
                for c in stream:
                    latest.pop(c.delivery.name, None)
                    latest[c.delivery.name] = c
                    while len(latest) > rows:
                        latest.popitem(last=False)
                    live.update(watch_table(list(reversed(latest.values())), title))
    finally:
        changes.close()
