"""``tidings deliveries``: the delivery history, one delivery's details, redelivery, and a live watch."""

from __future__ import annotations

import itertools
import json
import sys
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import click
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from tidings_client.cli import names, params
from tidings_client.cli.app import CONTEXT_SETTINGS, Env, confirm, pass_env
from tidings_client.cli.output import fields_table, fitted_table, jsonable, status_text, table, tsv_line, when
from tidings_client.errors import TidingsError
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


def delivery_row(d: Delivery, *, with_hook: str | None = None) -> list[str | Text]:
    return [d.name.rsplit("/", 1)[-1], when(d.create_time), *_compact_cells(d, with_hook), d.last_error or ""]


def delivery_columns(*, with_hook: str | None) -> tuple[str, ...]:
    """A list under a project or company mixes hooks: HOOK tells apart two rows of one event."""
    hook = ("HOOK",) if with_hook else ()
    return ("EVENT ID", "CREATED", "STATUS", *hook, "RESOURCE", "RESOURCE ID", "EVENT", "TRIES", "HTTP", "ERROR")


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
@click.argument("parent", required=False, type=names.PARENT)
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
    with_hook = None if "/hooks/" in parent else parent  # rows of several hooks: a HOOK column
    if everything:
        list_all(env, found, with_hook=with_hook)
        return
    shown = list(itertools.islice(found, limit + 1))
    more = len(shown) > limit
    shown = shown[:limit] if more else shown
    if env.out.as_json:
        env.out.json(shown)
        return
    env.out.print(_history_table(env, shown, with_hook=with_hook))
    env.out.note(
        f"{len(shown)} deliver{'y' if len(shown) == 1 else 'ies'}" + (" (more: --limit N or --all)" if more else "")
    )


def list_all(env: Env, found: Iterator[Delivery], *, with_hook: str | None) -> None:
    """Every match: streamed as it arrives when piped (a JSON array written item by item,
    JSON lines, or tab-separated rows), and with a running count on a terminal."""
    out = env.out
    if out.mode == "json" and not out.fields:
        sys.stdout.write("[")
        count = 0
        for count, d in enumerate(found, 1):
            text = json.dumps(jsonable(d), ensure_ascii=False, indent=2)
            sys.stdout.write(("," if count > 1 else "") + "\n  " + text.replace("\n", "\n  "))
            sys.stdout.flush()
        sys.stdout.write("\n]\n" if count else "]\n")
        return
    if out.as_json:
        for d in found:
            out.json(d, compact=True)
        return
    if out.tab_separated:
        columns = delivery_columns(with_hook=with_hook)
        sys.stdout.write("\t".join(columns) + "\n")
        for d in found:
            sys.stdout.write(tsv_line(delivery_row(d, with_hook=with_hook)))
        sys.stdout.flush()
        return
    listed: list[Delivery] = []
    with Progress(SpinnerColumn(), TextColumn("{task.completed} deliveries"), console=out.err, transient=True) as bar:
        task = bar.add_task("list")
        for n, d in enumerate(found, 1):
            listed.append(d)
            bar.update(task, completed=n)
    out.print(_history_table(env, listed, with_hook=with_hook))
    out.note(f"{len(listed)} deliver{'y' if len(listed) == 1 else 'ies'}")


def _history_table(env: Env, found: Sequence[Delivery], *, with_hook: str | None) -> Table:
    """Tab-separated output keeps every column whole (full times, every field) for programs;
    a terminal gets the one-line-a-row table that fits its width."""
    if env.out.tab_separated:
        t = table(*delivery_columns(with_hook=with_hook))
        for d in found:
            t.add_row(*delivery_row(d, with_hook=with_hook))
        return t
    return list_table(found, with_hook=with_hook, width=env.out.console.width)


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
@click.argument("name", type=names.DELIVERY)
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
@click.argument("name", required=False, type=names.DELIVERY)
@click.option(
    "--parent", type=names.PARENT, help="Queue again the deliveries under this hook, project or company that match."
)
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
        confirm(f"Queue again the deliveries under {parent} matching {combined or 'anything'}?")
    # One sweep through the history: a delivery queued again by this sweep has a newer
    # update_time, so one that fails again at once is not taken a second time, and the
    # sweep goes on to the older ones instead of ending on it.
    sweep = f'update_time < "{datetime.now(UTC).isoformat().replace("+00:00", "Z")}"'
    bounded = f"({combined}) AND {sweep}" if combined else sweep
    names: list[str] = []
    seen: set[str] = set()
    more = False
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
        while maximum is None or len(names) < maximum:
            limit = batch if maximum is None else min(batch, maximum - len(names))
            result = client.redeliver_matching(parent, bounded, limit=limit)
            fresh = [n for n in result.names if n not in seen]
            seen.update(fresh)
            names += fresh
            more = result.more
            progress.update(task, completed=len(names))
            # No new name means the server is handing back what this sweep already took
            # (its clock behind ours): stop rather than send them round again.
            if not result.more or not fresh:
                break
    if env.out.as_json:
        env.out.json({"queued_count": len(names), "names": names, "more": more})
    else:
        env.out.print(Text(f"queued {len(names)} deliver{'y' if len(names) == 1 else 'ies'} again", style="cyan"))
        if more:
            env.out.note("more match: run it again, or raise --max")


def compact_time(value: datetime | None, today: datetime) -> str:
    """``09:30:05`` today (UTC), ``11-20 09:30`` before: one short column in a live table."""
    if value is None:
        return "-"
    value = value.astimezone(UTC)
    return value.strftime("%H:%M:%S") if value.date() == today.date() else value.strftime("%m-%d %H:%M")


def watch_table(latest: Sequence[DeliveryChange], title: str, *, with_hook: str | None, width: int) -> Group:
    """Newest first, one line a change: compact times, short hook ids, and the error cut to
    what is left of ``width`` once the other columns have their whole values, so the rows
    that matter stay on screen at any width and no column but the error is cut. The title
    is one line too, cut at the terminal's edge (a table's title would wrap at the table's
    width), so that a long one, such as the reconnecting notice, pushes no row off screen."""
    today = datetime.now(UTC)
    headers = ["CHANGED", "STATUS", *(["HOOK"] if with_hook else []), "RESOURCE", "ID", "EVENT", "TRIES", "HTTP"]
    headers.append("EVENT ID")
    rows = [
        [compact_time(c.change_time, today), *_compact_cells(c.delivery, with_hook), c.delivery.name.rsplit("/", 1)[-1]]
        for c in latest
    ]
    errors = [c.delivery.last_error or "" for c in latest]
    heading = Text(title, style="italic", no_wrap=True, overflow="ellipsis")
    return Group(heading, fitted_table(headers, rows, errors, width, droppable=DROPPABLE))


DROPPABLE = ("TRIES", "EVENT", "ID", "RESOURCE", "HTTP")
"""The columns a narrow terminal loses first, in order: the event id, time, status and hook stay."""


def _compact_cells(d: Delivery, with_hook: str | None) -> list[str | Text]:
    """STATUS, HOOK (short id), RESOURCE, ID, EVENT, TRIES, HTTP: one short cell each."""
    e = d.event
    return [
        status_text(d.status),
        *([names.hook_label(d.hook, with_hook)] if with_hook else []),
        e.resource_name if e else "-",
        str(e.resource_id) if e else "-",
        e.event_type if e else "-",
        str(d.attempt_count),
        str(d.last_response_status or "-"),
    ]


def list_table(found: Sequence[Delivery], *, with_hook: str | None, width: int) -> Table:
    """A history list on a terminal: as ``watch_table``, with the event id first and the
    creation time, so that at 120 columns every delivery is one line."""
    today = datetime.now(UTC)
    headers = ["EVENT ID", "CREATED", "STATUS", *(["HOOK"] if with_hook else []), "RESOURCE", "ID", "EVENT"]
    headers += ["TRIES", "HTTP"]
    rows = [
        [d.name.rsplit("/", 1)[-1], compact_time(d.create_time, today), *_compact_cells(d, with_hook)] for d in found
    ]
    return fitted_table(headers, rows, [d.last_error or "" for d in found], width, droppable=DROPPABLE)


WATCH_EXAMPLES = """\b
Examples:
  tidings deliveries watch HOOK
  tidings deliveries watch companies/8/projects/6778 --status failed --status discarded
  tidings --json deliveries watch HOOK --count 10      # one JSON object per line
  tidings deliveries watch HOOK --reconnect-for 10m    # ride out a longer server restart
"""


@deliveries.command(epilog=WATCH_EXAMPLES)
@click.argument("parent", required=False, type=names.PARENT)
@click.option("--status", "statuses", type=STATUS_CHOICE, multiple=True, help="Only changes to this status.")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many changes.")
@click.option("--resume-token", default="", help="Continue after the change that carried this token.")
@click.option("--rows", type=click.IntRange(min=1), default=20, show_default=True, help="Rows in the live table.")
@click.option(
    "--reconnect-for",
    type=params.DURATION,
    default="1m",
    show_default=True,
    help="How long to keep reconnecting after the server goes away (0 to give up at once).",
)
@pass_env
def watch(
    env: Env,
    parent: str | None,
    statuses: tuple[str, ...],
    count: int | None,
    resume_token: str,
    rows: int,
    reconnect_for: timedelta,
) -> None:
    """Deliveries under PARENT as they change, in a live table (newest first) until Ctrl-C.

    A dropped connection (a server restart, a network blip) is reopened with backoff for up
    to --reconnect-for, saying so, and the watch goes on from the last change seen: nothing
    is missed or shown twice. When the output is not a terminal, each change is printed as a
    line; with --json, as one JSON object per line, whose resume_token can restart a later watch.
    """
    parent = env.parent(parent)
    target = env.settings.target
    live: Live | None = None
    state = {"title": f"Watching {parent} (Ctrl-C to stop)"}
    title = state["title"]
    with_hook = None if "/hooks/" in parent else parent  # rows of several hooks: a HOOK column
    latest: OrderedDict[str, DeliveryChange] = OrderedDict()

    def screen() -> Group:
        width = env.out.console.width
        return watch_table(list(reversed(latest.values())), state["title"], with_hook=with_hook, width=width)

    def lost(error: TidingsError, attempt: int, delay: float) -> None:
        message = (
            f"lost the connection to {target} ({error.code.name}); reconnecting in {delay:.1f}s"
            f" (attempt {attempt}, for up to {params.format_duration(reconnect_for)})"
        )
        if live is not None:
            # What is happening first: cut at the terminal's edge, the title is what goes.
            state["title"] = f"{message} — {title}"
            live.update(screen())
        else:
            env.out.note(message)

    def connected(retries: int) -> None:
        if live is not None:
            state["title"] = title
            live.update(screen())
        elif retries:
            env.out.note(f"reconnected to {target}; going on from the last change seen")
        else:
            env.out.note(f"watching {parent} on {target} (Ctrl-C to stop)")

    changes = env.client().watch(
        parent,
        statuses=[DeliveryStatus(s) for s in statuses],
        resume_token=resume_token,
        reconnect_for=reconnect_for.total_seconds(),
        on_retry=lost,
        on_connected=connected,
    )
    stream = itertools.islice(changes, count) if count else changes
    try:
        if env.out.as_json:
            for c in stream:
                env.out.json(c, compact=True)
        elif not env.out.console.is_terminal:
            # Tab-separated as the piped list is (the console would expand tabs and wrap).
            for c in stream:
                sys.stdout.write(tsv_line([when(c.change_time), *delivery_row(c.delivery, with_hook=with_hook)]))
                sys.stdout.flush()
        else:
            # The title, the header and a line to spare: the newest rows always fit the screen.
            shown = max(1, min(rows, env.out.console.height - 3))
            with Live(
                screen(),
                console=env.out.console,
                refresh_per_second=8,
                vertical_overflow="crop",
            ) as live:
                for c in stream:
                    latest.pop(c.delivery.name, None)
                    latest[c.delivery.name] = c
                    while len(latest) > shown:
                        latest.popitem(last=False)
                    live.update(screen())
    finally:
        changes.close()
