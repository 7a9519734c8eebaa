"""``tidings hooks``: create, inspect, change, pause, delete and test hooks."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta
from typing import Any, TextIO

import click
from rich.console import Group
from rich.text import Text

from tidings_client.cli import names, params
from tidings_client.cli.app import CONTEXT_SETTINGS, Env, confirm, pass_env
from tidings_client.cli.events import select_events, triggers_table
from tidings_client.cli.output import STATUS_STYLE, fields_table, joined, span, status_text, table, when
from tidings_client.errors import TidingsError
from tidings_client.types import (
    DeliveryOrdering,
    Hook,
    HookChanges,
    HookOverview,
    HookStatus,
    RateLimit,
    RetryPolicy,
)

ORDERINGS = {"unordered": DeliveryOrdering.UNORDERED, "per-resource": DeliveryOrdering.PER_RESOURCE}
STATUSES = {s.value: s for s in HookStatus}
# What the server applies when rotate-secret is given no --overlap; only used to word the question.
DEFAULT_OVERLAP = timedelta(hours=24)


@click.group(
    context_settings=CONTEXT_SETTINGS,
    epilog="\b\nExamples:\n  tidings hooks list --project 8/6778\n  tidings hooks show HOOK"
    "\n  tidings hooks pause HOOK\n  tidings hooks rotate-secret HOOK --overlap 2h",
)
def hooks() -> None:
    """Create, inspect, change, pause, delete and test hooks, and rotate their signing secrets.

    A hook is named companies/C/hooks/H (company level) or companies/C/projects/P/hooks/H
    (project level). Where HOOK is taken, its id H alone means the hook under the profile's
    parent; shell completion offers the hooks there.
    """


def retries(p: RetryPolicy) -> str:
    if p == RetryPolicy():
        return "server defaults"
    return (
        f"timeout {span(p.timeout)}, window {span(p.retry_window)}, backoff {span(p.initial_backoff)}"
        f" to {span(p.max_backoff)}, on {joined(p.retryable_statuses)}"
    )


def signing(hook: Hook) -> Text:
    return Text("off", style="yellow") if hook.signing_disabled else Text("on", style="green")


def rate_limit_text(rate: RateLimit | None) -> str:
    if rate is None:
        return "none"
    return f"{params.rate_text(rate.per_second)}, burst {rate.burst}"


def rate_limit_option(rate: float | None, burst: int | None) -> RateLimit | None:
    """--rate-limit and --burst as a limit; a burst alone is refused (it needs a rate)."""
    if rate is None:
        if burst is not None:
            raise click.UsageError("--burst needs --rate-limit (e.g. --rate-limit 1000/min --burst 50)")
        return None
    return RateLimit(rate, burst or 1) if rate else RateLimit(0)


RATE_LIMIT_HELP = (
    "At most this many deliveries, COUNT/UNIT (s, min or h): 1000/min is Convoy's default; 'none' removes it."
    " Over it, deliveries wait their turn."
)
BURST_HELP = "With --rate-limit: deliveries that may go at once after a quiet spell (default 1)."


def hook_rows(hook: Hook) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("name", hook.name),
        ("display name", hook.display_name or "-"),
        ("status", status_text(hook.status)),
        ("url", hook.destination_url),
        ("authorization", hook.authorization_header or "-"),
        ("payload format", hook.payload_format),
        ("ordering", hook.ordering.value.replace("_", "-")),
        ("max concurrency", hook.max_concurrency),
        ("retries", retries(hook.retry_policy)),
        ("signing", signing(hook)),
        ("rate limit", rate_limit_text(hook.rate_limit)),
    ]
    if hook.disabled_reason:
        rows.append(("disabled", Text(f"since {when(hook.disable_time)}: {hook.disabled_reason}", style="bold red")))
    if "/projects/" not in hook.name:
        rows.append(("projects", ", ".join(map(str, hook.projects)) or "every project of the company"))
    if hook.signing_secret:
        rows.append(("signing secret", Text(hook.signing_secret, style="bold")))
    if hook.previous_secret_expire_time is not None:
        rows.append(("previous secret", f"also signs until {when(hook.previous_secret_expire_time)}"))
    if hook.template:
        rows.append(("template", f"{hook.template} (revision {hook.template_revision})"))
    rows += [("created", when(hook.create_time)), ("updated", when(hook.update_time))]
    return rows


def warn_secret_shown_once(env: Env, hook: Hook) -> None:
    """The server never returns a secret again, so the one chance to keep it must not go unnoticed."""
    if not hook.signing_secret:
        return
    env.out.warn(
        "The signing secret is shown once: store it now where your receiver can read it."
        f" If it is lost, `tidings hooks rotate-secret {hook.name}` makes a new one."
    )
    if hook.signing_disabled:
        env.out.note(f"Signing is off for this hook; `tidings hooks update {hook.name} --signing` turns it on.")


def print_hook(env: Env, hook: Hook) -> None:
    if env.out.as_json:
        env.out.json(hook)
    else:
        env.out.print(fields_table(hook_rows(hook)))


def said(env: Env, hook: Hook, verb: str, what_follows: str) -> None:
    """One line for a change whose result is the change itself (pause, resume)."""
    if env.out.as_json:
        env.out.json(hook)
    else:
        env.out.print(Text(f"{verb} ", style=STATUS_STYLE[hook.status]) + Text(hook.name) + Text(f": {what_follows}"))


def retry_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--timeout",
                "attempt_timeout",
                type=params.DURATION,
                help="How long the endpoint has to answer (1s-60s).",
            ),
            click.option("--retry-window", type=params.DURATION, help="Retry for this long, then discard (1m-72h)."),
            click.option("--initial-backoff", type=params.DURATION, help="The first retry's wait, doubling after."),
            click.option("--max-backoff", type=params.DURATION, help="The longest wait between retries."),
            click.option(
                "--retry-statuses", type=params.STATUS_RANGES, help="HTTP statuses retried, e.g. 408,429,500-599."
            ),
        ]
    ):
        fn = option(fn)
    return fn


def retry_policy(base: RetryPolicy, given: dict[str, Any]) -> RetryPolicy | None:
    """The policy with the given options changed, or None when no retry option was given."""
    changes: dict[str, Any] = {
        "timeout": given.pop("attempt_timeout", None),
        "retry_window": given.pop("retry_window", None),
        "initial_backoff": given.pop("initial_backoff", None),
        "max_backoff": given.pop("max_backoff", None),
        "retryable_statuses": given.pop("retry_statuses", None),
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(base, **changes) if changes else None


def read_auth_header(given: str | None, file: TextIO | None) -> str | None:
    """The header from --auth-header or --auth-header-file (a file's end of line is not part of it)."""
    if file is None:
        return given
    if given is not None:
        raise click.UsageError("give --auth-header or --auth-header-file, not both")
    value = file.read().strip()
    if not value:
        raise click.BadParameter(f"{file.name} holds no header", param_hint="--auth-header-file")
    return value


CREATE_EXAMPLES = """\b
Examples:
  tidings hooks create --project 8/6778 --url https://erp.example.com/procore \\
      --auth-header-file erp-token.txt --format procore.v4 --event RFIs:create --event RFIs:update
  vault read -field=header secret/erp | tidings hooks create --project 8/6778 \\
      --url https://erp.example.com/procore --format procore.v4 --auth-header-file -
  tidings hooks create --company 8 --url https://erp.example.com/in --format procore.v3 --id erp-sync
  tidings hooks create --company 8 --url https://erp.example.com/rfis --format procore.v4 \\
      --event 'RFIs:*' --projects 1,3      # RFIs of projects 1 and 3 (without --projects: every project)
  tidings hooks create --project 8/6778 --url https://example.com/in --format procore.v4 \\
      --event 'Submittals:*' --ordering per-resource --retry-window 2h
  tidings --json hooks create --company 8 --url https://erp.example.com/in --format procore.v3 \\
      | jq -r .hook.signing_secret      # keep it: it is never shown again
"""


@hooks.command(epilog=CREATE_EXAMPLES)
@click.option("--project", type=params.PROJECT, help="A project-level hook of COMPANY/PROJECT, e.g. 8/6778.")
@click.option("--company", type=params.COMPANY, help="A company-level hook of COMPANY, e.g. 8.")
@click.option("--url", required=True, help="Where deliveries are POSTed.")
@click.option("--format", "payload_format", required=True, help="Payload format (see `tidings catalog formats`).")
@click.option(
    "--auth-header",
    help="Authorization header sent with every delivery (write-only); --auth-header-file keeps it out of"
    " the process list.",
)
@click.option(
    "--auth-header-file",
    type=click.File("r"),
    help="Read the Authorization header from PATH, or from stdin with -, so that it never shows in a process list.",
)
@click.option("--name", "display_name", default="", help="A label for people.")
@click.option("--id", "hook_id", default="", help="The hook's id (lowercase, digits, hyphens); generated if unset.")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=params.EVENT,
    help="An event to send, RESOURCE:TYPE (RESOURCE:* for all of its types); repeatable.",
)
@click.option(
    "--projects",
    type=params.PROJECT_IDS,
    help="Company hooks: receive project-level events (RFIs, …) from these projects only, e.g. 1,3;"
    " default every project of the company.",
)
@click.option("--paused", is_flag=True, help="Create it paused: deliveries wait until `hooks resume`.")
@click.option(
    "--ordering", type=click.Choice(list(ORDERINGS)), help="per-resource keeps each resource's events in order."
)
@click.option("--max-concurrency", type=click.IntRange(1, 64), help="Attempts in flight at once (default 8).")
@click.option(
    "--no-signing",
    is_flag=True,
    help="Send deliveries without webhook-id, webhook-timestamp and webhook-signature headers.",
)
@click.option("--rate-limit", type=params.RATE, help=RATE_LIMIT_HELP)
@click.option("--burst", type=click.IntRange(1, 10_000), help=BURST_HELP)
@retry_options
@pass_env
def create(
    env: Env,
    /,
    project: str | None,
    company: str | None,
    url: str,
    payload_format: str,
    auth_header: str | None,
    auth_header_file: TextIO | None,
    display_name: str,
    hook_id: str,
    events: tuple[tuple[str, str], ...],
    projects: tuple[int, ...] | None,
    paused: bool,
    ordering: str | None,
    max_concurrency: int | None,
    no_signing: bool,
    rate_limit: float | None,
    burst: int | None,
    **retry: Any,
) -> None:
    """Create a hook, and select its events with --event.

    The payload format cannot change later. If an event cannot be selected the hook is
    removed again, so a failed create leaves nothing behind.

    Deliveries are signed (Standard Webhooks) with the secret printed here, and only here:
    store it for the receiver, which verifies the webhook-signature header with it.
    """
    if (project is None) == (company is None):
        raise click.UsageError("give exactly one of --project COMPANY/PROJECT or --company COMPANY")
    parent = project or company
    assert parent is not None
    if parent.endswith("/-"):
        raise click.UsageError("--project needs one project, not '-'")
    if projects and project is not None:
        raise click.UsageError("--projects is for company hooks (--company); a project hook has its project")
    auth_header = read_auth_header(auth_header, auth_header_file)
    client = env.client()
    hook = client.create_hook(
        parent,
        url,
        payload_format,
        display_name=display_name,
        authorization_header=auth_header or "",
        hook_id=hook_id,
        status=HookStatus.PAUSED if paused else None,
        retry_policy=retry_policy(RetryPolicy(), retry),
        ordering=ORDERINGS[ordering] if ordering else None,
        max_concurrency=max_concurrency,
        signing_disabled=no_signing,
        rate_limit=limit if (limit := rate_limit_option(rate_limit, burst)) and limit.per_second else None,
        projects=projects or (),
    )
    triggers = []
    if events:
        try:
            triggers = select_events(client, hook, events)
        except (TidingsError, click.ClickException):
            try:
                client.delete_hook(hook.name)
            except TidingsError:
                env.out.note(f"{hook.name} was created without its events; `tidings hooks delete` removes it")
            raise
    if no_signing:
        # The server keeps a secret ready, but a hook that signs nothing has no secret to
        # store: printing one would ask the admin to keep what no receiver checks.
        hook = replace(hook, signing_secret="")
    if env.out.as_json:
        env.out.json({"hook": hook, "triggers": triggers})
    else:
        env.out.print(Text("created ", style="green") + Text(hook.name, style="bold"))
        env.out.print(fields_table(hook_rows(hook)))
        if triggers:
            env.out.print(triggers_table(triggers))
    if no_signing:
        env.out.note(
            f"Signing is off. To sign later: `tidings hooks rotate-secret {hook.name} --overlap 0` prints a"
            f" secret, then `tidings hooks update {hook.name} --signing`."
        )
    warn_secret_shown_once(env, hook)


def signing_cell(hook: Hook) -> Text:
    """On or off, and while a rotation's overlap lasts, until when the previous secret signs too."""
    cell = signing(hook)
    if hook.previous_secret_expire_time is not None:
        cell.append(f" (+previous until {when(hook.previous_secret_expire_time)})", style="")
    return cell


LIST_EXAMPLES = """\b
Examples:
  tidings hooks list --project 8/6778
  tidings hooks list --project 8/-            # the project hooks of every project of company 8
  tidings hooks list --company 8 --status paused
  tidings --json hooks list --project 8/6778 --format procore.v4
"""


@hooks.command("list", epilog=LIST_EXAMPLES)
@click.option("--project", type=params.PROJECT, help="Hooks of COMPANY/PROJECT (COMPANY/- for all projects).")
@click.option("--company", type=params.COMPANY, help="Company-level hooks of COMPANY.")
@click.option("--status", type=click.Choice(list(STATUSES)), help="Only hooks with this status.")
@click.option("--format", "payload_format", help="Only hooks with this payload format.")
@click.option("--filter", "expr", help="An AIP-160 filter on status and payload_format, e.g. 'status = ACTIVE'.")
@pass_env
def list_(
    env: Env,
    project: str | None,
    company: str | None,
    status: str | None,
    payload_format: str | None,
    expr: str | None,
) -> None:
    """List hooks under a company or a project (default: the profile's parent)."""
    if project and company:
        raise click.UsageError("give --project or --company, not both")
    parent = env.parent(project or company, "--project or --company")
    clauses = [f"({expr})"] if expr else []
    if status:
        clauses.append(f"status = {status.upper()}")
    if payload_format:
        clauses.append(f'payload_format = "{payload_format}"')
    found = list(env.client().list_hooks(parent, filter=" AND ".join(clauses)))
    if env.out.as_json:
        env.out.json(found)
        return
    t = table("NAME", "STATUS", "FORMAT", "URL", "SIGNING", "DISPLAY NAME")
    for h in found:
        t.add_row(h.name, status_text(h.status), h.payload_format, h.destination_url, signing_cell(h), h.display_name)
    env.out.print(t)
    env.out.note(f"{len(found)} hook(s)")


@hooks.command(epilog="\b\nExample:\n  tidings hooks get companies/8/projects/6778/hooks/procore-sync")
@click.argument("hook", type=names.HOOK)
@pass_env
def get(env: Env, hook: str) -> None:
    """Show a hook's settings (the Authorization header masked), whether deliveries are signed
    and, during a rotation's overlap, until when the previous secret signs too.

    The signing secret itself is never shown again after create and rotate-secret.
    """
    print_hook(env, env.client().get_hook(hook))


def limited_text(o: HookOverview) -> Text | str:
    if o.hook.rate_limit is None and o.rate_limited_time is None:
        return "-"
    if o.rate_limited_time is None:
        return "never held a delivery back"
    return Text(f"last held a delivery back {when(o.rate_limited_time)}", style="yellow")


def circuit_text(o: HookOverview) -> Text:
    if o.circuit_open_time is None:
        return Text("closed", style="green")
    return Text(
        f"open since {when(o.circuit_open_time)} (this server): one probe at a time, next {when(o.next_probe_time)}",
        style="bold red",
    )


def overview_view(o: HookOverview) -> Group:
    title = f"project {o.project_id} only (latency and health: the whole hook)" if o.project_id else None
    counts = table("QUEUED", "RETRYING", "DELIVERED", "FAILED", "DISCARDED", "SUCCESS", "P50", "P95", title=title)
    counts.add_row(
        Text(str(o.queued_count), style="cyan"),
        Text(str(o.retrying_count), style="yellow"),
        Text(str(o.delivered_count), style="green"),
        Text(str(o.failed_count), style="bold red"),
        Text(str(o.discarded_count), style="magenta"),
        f"{o.success_rate:.1%}",
        span(o.latency_p50),
        span(o.latency_p95),
    )
    health = fields_table(
        [
            ("last success", when(o.last_success_time)),
            ("last failure", when(o.last_failure_time)),
            ("failure reason", o.last_failure_reason or "-"),
            ("failures in a row", o.consecutive_failures),
            ("next retry", when(o.next_retry_time)),
            ("rate limited", limited_text(o)),
            ("circuit", circuit_text(o)),
        ]
    )
    return Group(fields_table(hook_rows(o.hook)), Text(""), counts, Text(""), health)


SHOW_EXAMPLES = """\b
Examples:
  tidings hooks show companies/8/projects/6778/hooks/procore-sync
  tidings --json hooks show HOOK | jq .success_rate
  tidings hooks show companies/8/hooks/rfis --in-project 6778   # a company hook, in one project
"""


@hooks.command(epilog=SHOW_EXAMPLES)
@click.argument("hook", type=names.HOOK)
@click.option(
    "--in-project",
    "project_id",
    type=click.IntRange(min=1),
    help="Company hooks: count only the deliveries of this project's events (a project id, e.g. 6778).",
)
@pass_env
def show(env: Env, hook: str, project_id: int | None) -> None:
    """The hook's Overview: settings, deliveries per status in the last 28 days, success rate,
    latency, and the last success and failure."""
    o = env.client().get_hook_overview(hook, project_id=project_id or 0)
    if env.out.as_json:
        env.out.json(o)
    else:
        env.out.print(overview_view(o))


UPDATE_EXAMPLES = """\b
Examples:
  tidings hooks update HOOK --url https://erp.example.com/v2/procore
  tidings hooks update HOOK --auth-header-file new-token.txt
  tidings hooks update HOOK --no-auth-header --retry-window 1h --retry-statuses 429,500-599
  tidings hooks update HOOK --status disabled      # discards pending deliveries
  tidings hooks update HOOK --no-signing           # no webhook-signature headers from now on
  tidings hooks update companies/8/hooks/rfis --projects 1,3,4   # a company hook: these projects only
  tidings hooks update companies/8/hooks/rfis --all-projects     # every project again

The payload format never changes: delete the hook and create it again.
"""


@hooks.command(epilog=UPDATE_EXAMPLES)
@click.argument("hook", type=names.HOOK)
@click.option("--url", help="A new destination URL.")
@click.option("--auth-header", help="A new Authorization header (--auth-header-file keeps it out of the process list).")
@click.option(
    "--auth-header-file",
    type=click.File("r"),
    help="Read the Authorization header from PATH, or from stdin with -, so that it never shows in a process list.",
)
@click.option("--no-auth-header", is_flag=True, help="Send no Authorization header from now on.")
@click.option("--name", "display_name", help="A new label.")
@click.option("--status", type=click.Choice(list(STATUSES)), help="active, paused, or disabled.")
@click.option("--ordering", type=click.Choice(list(ORDERINGS)))
@click.option("--max-concurrency", type=click.IntRange(1, 64))
@click.option(
    "--signing/--no-signing",
    default=None,
    help="Sign deliveries with the hook's secret, or stop. A hook made before signing existed"
    " needs `hooks rotate-secret` first.",
)
@click.option("--rate-limit", type=params.RATE, help=RATE_LIMIT_HELP)
@click.option("--burst", type=click.IntRange(1, 10_000), help=BURST_HELP)
@click.option("--projects", type=params.PROJECT_IDS, help="Company hooks: these projects only, e.g. 1,3.")
@click.option("--all-projects", is_flag=True, help="Company hooks: every project of the company again.")
@retry_options
@pass_env
def update(
    env: Env,
    /,
    hook: str,
    url: str | None,
    auth_header: str | None,
    auth_header_file: TextIO | None,
    no_auth_header: bool,
    display_name: str | None,
    status: str | None,
    ordering: str | None,
    max_concurrency: int | None,
    signing: bool | None,
    rate_limit: float | None,
    burst: int | None,
    projects: tuple[int, ...] | None,
    all_projects: bool,
    **retry: Any,
) -> None:
    """Change a hook's settings; what is not given stays as it is.

    Retry options change only the fields given: the rest of the hook's policy is kept.
    """
    auth_header = read_auth_header(auth_header, auth_header_file)
    if auth_header is not None and no_auth_header:
        raise click.UsageError("give --auth-header (or --auth-header-file) or --no-auth-header, not both")
    if projects is not None and all_projects:
        raise click.UsageError("give --projects or --all-projects, not both")
    client = env.client()
    policy = None
    if any(v is not None for v in retry.values()):
        policy = retry_policy(client.get_hook(hook).retry_policy, retry)
    changes = HookChanges(
        display_name=display_name,
        destination_url=url,
        authorization_header="" if no_auth_header else auth_header,
        status=STATUSES[status] if status else None,
        retry_policy=policy,
        ordering=ORDERINGS[ordering] if ordering else None,
        max_concurrency=max_concurrency,
        signing_disabled=None if signing is None else not signing,
        rate_limit=rate_limit_option(rate_limit, burst),
        projects=() if all_projects else projects,
    )
    if changes == HookChanges():
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    print_hook(env, client.update_hook(hook, changes))


@hooks.command(epilog="\b\nExample:\n  tidings hooks pause companies/8/projects/6778/hooks/procore-sync")
@click.argument("hook", type=names.HOOK)
@pass_env
def pause(env: Env, hook: str) -> None:
    """Stop delivering; matching events are kept and wait until `hooks resume`."""
    changed = env.client().update_hook(hook, HookChanges(status=HookStatus.PAUSED))
    said(env, changed, "paused", "deliveries wait until `tidings hooks resume`")


@hooks.command(epilog="\b\nExample:\n  tidings hooks resume companies/8/projects/6778/hooks/procore-sync")
@click.argument("hook", type=names.HOOK)
@pass_env
def resume(env: Env, hook: str) -> None:
    """Deliver again, starting with what waited while paused."""
    changed = env.client().update_hook(hook, HookChanges(status=HookStatus.ACTIVE))
    said(env, changed, "resumed", "deliveries go out again")


@hooks.command(epilog="\b\nExamples:\n  tidings hooks delete HOOK\n  tidings hooks delete HOOK --yes")
@click.argument("hook", type=names.HOOK)
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@pass_env
def delete(env: Env, hook: str, yes: bool) -> None:
    """Delete a hook and its selected events; its pending deliveries are discarded.

    Asks first unless --yes; without a terminal to ask on, --yes is required.
    """
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("not deleting without confirmation: add --yes")
        confirm(f"Delete {hook} and discard its pending deliveries?")
    env.client().delete_hook(hook)
    if env.out.as_json:
        env.out.json({"deleted": hook})
    else:
        env.out.print(Text("deleted ", style="red") + Text(hook))


ROTATE_EXAMPLES = """\b
Examples:
  tidings hooks rotate-secret HOOK                 # the old secret signs too for 24h
  tidings hooks rotate-secret HOOK --overlap 2h --yes
  tidings hooks rotate-secret HOOK --overlap 0     # the old secret stops at once (it leaked)
  tidings --json hooks rotate-secret HOOK --yes | jq -r .signing_secret
"""


@hooks.command("rotate-secret", epilog=ROTATE_EXAMPLES)
@click.argument("hook", type=names.HOOK)
@click.option(
    "--overlap",
    type=params.DURATION,
    help="How long deliveries carry a signature from the old secret too, 0s to 7d (default 24h).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@pass_env
def rotate_secret(env: Env, hook: str, overlap: timedelta | None, yes: bool) -> None:
    """Give a hook a new signing secret and print it, the only time it is shown.

    During the overlap every delivery carries signatures from both secrets, so receivers can
    switch to the new one without rejecting anything; after it only the new one signs. Asks
    first unless --yes; without a terminal to ask on, --yes is required.
    """
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("not rotating without confirmation: add --yes")
        keeps = "stops at once" if overlap == timedelta(0) else f"keeps signing for {span(overlap or DEFAULT_OVERLAP)}"
        confirm(f"Give {hook} a new signing secret? The current one {keeps}.")
    rotated = env.client().rotate_signing_secret(hook, overlap)
    if env.out.as_json:
        env.out.json(rotated)
    else:
        env.out.print(Text("rotated ", style="green") + Text(rotated.name, style="bold"))
        rows: list[tuple[str, Any]] = [("signing secret", Text(rotated.signing_secret, style="bold"))]
        if rotated.previous_secret_expire_time is not None:
            rows.append(("previous secret", f"also signs until {when(rotated.previous_secret_expire_time)}"))
        else:
            rows.append(("previous secret", "no longer signs"))
        rows.append(("signing", signing(rotated)))
        env.out.print(fields_table(rows))
    warn_secret_shown_once(env, rotated)


@hooks.command("test", epilog="\b\nExample:\n  tidings hooks test companies/8/projects/6778/hooks/procore-sync")
@click.argument("hook", type=names.HOOK)
@pass_env
def test_(env: Env, hook: str) -> None:
    """Send a test event to the hook's endpoint now and show what it answered.

    Nothing is recorded in the history. Exits 1 when the endpoint did not answer 2xx.
    """
    result = env.client().send_test_event(hook)
    if env.out.as_json:
        env.out.json(result)
    else:
        verdict = Text("ok", style="green") if result.ok else Text("failed", style="bold red")
        env.out.print(
            fields_table(
                [
                    ("result", verdict),
                    ("http status", result.response_status or "-"),
                    ("latency", span(result.latency)),
                    ("error", result.error or "-"),
                    ("response", result.response_excerpt.decode("utf-8", "replace") or "-"),
                ]
            )
        )
    if not result.ok:
        raise click.exceptions.Exit(1)
