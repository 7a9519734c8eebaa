"""``tidings events``: select the events a hook sends, review them, remove some."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

import click
from rich.table import Table
from rich.text import Text

from tidings_client.cli import names, params
from tidings_client.cli.app import CONTEXT_SETTINGS, Env, pass_env
from tidings_client.cli.output import table, when
from tidings_client.client import Client
from tidings_client.errors import InvalidArgument, TidingsError
from tidings_client.types import Hook, Scope, Trigger


class NothingMatched(click.ClickException):
    """Something named on the command line does not exist on the server: exit 3, like NOT_FOUND."""

    exit_code = 3


def hook_scope(hook_name: str) -> Scope:
    return Scope.PROJECT if "/projects/" in hook_name else Scope.COMPANY


def selectable_scopes(hook_name: str) -> tuple[Scope, ...]:
    """The levels of the resources a hook may select: a company hook's include the projects'."""
    if hook_scope(hook_name) is Scope.PROJECT:
        return (Scope.PROJECT,)
    return (Scope.COMPANY, Scope.PROJECT)


def expand_events(client: Client, hook: Hook, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Pairs with ``*`` become every event type the catalog lists for that resource.

    Only wildcards need the catalog; other pairs go to the server as given, which names any
    pair it refuses.
    """
    pairs = list(pairs)
    if not any(event_type == "*" for _, event_type in pairs):
        return pairs
    catalog = {
        r.resource_name.lower(): r
        for scope in reversed(selectable_scopes(hook.name))  # a company resource wins a tie of names
        for r in client.list_resources(scope, payload_format=hook.payload_format, page_size=1000)
    }
    out: list[tuple[str, str]] = []
    for resource, event_type in pairs:
        if event_type != "*":
            out.append((resource, event_type))
            continue
        entry = catalog.get(resource.lower())
        if entry is None:
            raise unknown_resource(client, hook, resource)
        out.extend((entry.resource_name, t) for t in entry.event_types)
    return list(dict.fromkeys(out))


class UnknownResource(click.ClickException):
    """An event whose resource the catalog does not have: exit 2, as the server's refusal would."""

    exit_code = 2


def unknown_resource(client: Client, hook: Hook, resource: str) -> UnknownResource:
    """A resource the catalog does not have, with the closest ones it has and where to look."""
    scope = hook_scope(hook.name)
    try:
        known = [
            r.resource_name
            for level in selectable_scopes(hook.name)
            for r in client.list_resources(level, payload_format=hook.payload_format, page_size=1000)
        ]
    except TidingsError:
        known = []
    close = difflib.get_close_matches(resource, known, n=3, cutoff=0.5) or difflib.get_close_matches(
        resource.lower(), [k.lower() for k in known], n=3, cutoff=0.5
    )
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UnknownResource(
        f"--event: {resource!r} is not a resource {scope} hooks can select for {hook.payload_format}{hint}"
        f" See `tidings catalog resources --scope {scope}`"
    )


_UNKNOWN = re.compile(r"unknown resource '([^']+)'")


def select_events(client: Client, hook: Hook, pairs: Iterable[tuple[str, str]]) -> list[Trigger]:
    """Expand wildcards and select the events; an unknown resource gets a suggestion."""
    try:
        return client.create_triggers(hook.name, expand_events(client, hook, pairs))
    except InvalidArgument as exc:
        found = _UNKNOWN.search(exc.message)
        if found is None:
            raise
        raise unknown_resource(client, hook, found.group(1)) from None


def triggers_table(triggers: Sequence[Trigger]) -> Table:
    t = table("RESOURCE", "EVENT", "SELECTED", "TRIGGER ID")
    for trig in sorted(triggers, key=lambda x: (x.resource_name.lower(), x.event_type)):
        t.add_row(trig.resource_name, trig.event_type, when(trig.create_time), trig.name.rsplit("/", 1)[-1])
    return t


@click.group(
    context_settings=CONTEXT_SETTINGS,
    epilog="\b\nExamples:\n  tidings events list HOOK\n  tidings events add HOOK 'RFIs:*'"
    "\n  tidings events remove HOOK RFIs:delete",
)
def events() -> None:
    """Select the events a hook sends (triggers), review them, and remove some.

    An event is RESOURCE:TYPE as the catalog names it, e.g. RFIs:create; RESOURCE:* means
    every type the resource has. Quote names with spaces: 'Change Order Packages:update'.
    """


ADD_EXAMPLES = """\b
Examples:
  tidings events add HOOK RFIs:create RFIs:update
  tidings events add HOOK 'Submittals:*' 'Change Order Packages:update'
"""


@events.command(epilog=ADD_EXAMPLES)
@click.argument("hook", type=names.HOOK)
@click.argument("event", nargs=-1, required=True, type=params.EVENT)
@pass_env
def add(env: Env, hook: str, event: tuple[tuple[str, str], ...]) -> None:
    """Select events for HOOK (all or none; ones already selected are kept)."""
    client = env.client()
    added = select_events(client, client.get_hook(hook), event)
    if env.out.as_json:
        env.out.json(added)
    else:
        env.out.print(triggers_table(added))
        env.out.note(f"{len(added)} event(s) selected")


REMOVE_EXAMPLES = """\b
Examples:
  tidings events remove HOOK RFIs:delete
  tidings events remove HOOK 'Submittals:*'
  tidings events remove HOOK rfis.update        # a trigger id, as `events list` shows
"""


@events.command(epilog=REMOVE_EXAMPLES)
@click.argument("hook", type=names.HOOK)
@click.argument("event", nargs=-1, required=True)
@click.option("--missing-ok", is_flag=True, help="Ignore events the hook does not have.")
@pass_env
def remove(env: Env, hook: str, event: tuple[str, ...], missing_ok: bool) -> None:
    """Stop sending events: RESOURCE:TYPE, RESOURCE:*, or trigger ids or names (all or none)."""
    client = env.client()
    selected = list(client.list_triggers(hook))
    names: list[str] = []
    missing: list[str] = []
    for text in event:
        matched = match_triggers(selected, text)
        if not matched:
            missing.append(text)
        names.extend(t.name for t in matched)
    if missing and not missing_ok:
        raise NothingMatched(f"{hook} does not send {', '.join(missing)} (see `tidings events list {hook}`)")
    names = list(dict.fromkeys(names))
    if names:
        client.delete_triggers(hook, names, allow_missing=missing_ok)
    removed = [t for t in selected if t.name in names]
    if env.out.as_json:
        env.out.json(removed)
    else:
        for t in removed:
            env.out.print(Text("removed ", style="red") + Text(f"{t.resource_name}:{t.event_type}"))
        env.out.note(f"{len(removed)} event(s) removed")


def match_triggers(selected: Sequence[Trigger], text: str) -> list[Trigger]:
    """The selected triggers ``text`` means: a full name, an id, or RESOURCE:TYPE (TYPE may be *)."""
    by_id = [t for t in selected if t.name == text or t.name.rsplit("/", 1)[-1] == text]
    if by_id:
        return by_id
    try:
        resource, event_type = params.parse_event(text)
    except ValueError:
        return []
    return [
        t
        for t in selected
        if t.resource_name.lower() == resource.lower() and (event_type == "*" or t.event_type == event_type)
    ]


@events.command("list", epilog="\b\nExamples:\n  tidings events list HOOK\n  tidings --json events list HOOK")
@click.argument("hook", type=names.HOOK)
@pass_env
def list_(env: Env, hook: str) -> None:
    """The events HOOK sends."""
    selected = list(env.client().list_triggers(hook))
    if env.out.as_json:
        env.out.json(selected)
    else:
        env.out.print(triggers_table(selected))
        env.out.note(f"{len(selected)} event(s) selected")
