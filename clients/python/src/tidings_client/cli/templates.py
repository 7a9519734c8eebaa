"""``tidings templates``: a company's project templates, and applying one to a project."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

import click
from rich.text import Text

from tidings_client.cli import params
from tidings_client.cli.app import CONTEXT_SETTINGS, Env, confirm, pass_env
from tidings_client.cli.hooks import ORDERINGS, warn_secret_shown_once
from tidings_client.cli.output import fields_table, table, when
from tidings_client.client import Client
from tidings_client.types import HookDefinition, Scope, Template

HOOKS_FILE_HELP = """\b
Examples:
  tidings templates create --company 8 --id standard --name "Standard project" --hooks-file hooks.json
  tidings templates update companies/8/templates/standard --hooks-file hooks.json

\b
The hooks file is JSON: a list of hook definitions, each
  {"hook_id": "erp", "url": "https://erp.example.com/in", "format": "procore.v4",
   "events": ["RFIs:create", "Submittals:*"], "name": "ERP", "auth_header": "Bearer …",
   "ordering": "per-resource", "max_concurrency": 4, "signing": true}
hook_id, url, format and events are required; RESOURCE:* selects every event type of a
project-level resource. Keep the file private if it holds an Authorization header: the
server stores the header encrypted and never shows it again.
"""
_KEYS = {"hook_id", "url", "format", "events", "name", "auth_header", "ordering", "max_concurrency", "signing"}


@click.group(
    context_settings=CONTEXT_SETTINGS,
    epilog="\b\nExamples:\n  tidings templates list --company 8"
    "\n  tidings templates show companies/8/templates/standard"
    "\n  tidings templates apply companies/8/templates/standard --project 8/6778",
)
def templates() -> None:
    """A company's project templates: the hooks each project made from one starts with.

    A template is named companies/C/templates/T. Applying it to a project makes the
    project's hooks, each with a signing secret of its own, as a copy made once: editing the
    template later changes no hook already made. Applying again makes nothing twice.
    """


def load_definitions(client: Client, source: TextIO) -> list[HookDefinition]:
    """The definitions of a hooks file, with ``RESOURCE:*`` expanded from the catalog."""
    try:
        data = json.load(source)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--hooks-file") from None
    if not isinstance(data, list):
        raise click.BadParameter("expected a JSON list of hook definitions", param_hint="--hooks-file")
    catalog: dict[str, tuple[str, tuple[str, ...]]] | None = None
    found = []
    for i, item in enumerate(data):
        where = f"hooks[{i}]"
        if not isinstance(item, dict):
            raise click.BadParameter(f"{where}: expected an object", param_hint="--hooks-file")
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise click.BadParameter(f"{where}: unknown key {unknown[0]!r}", param_hint="--hooks-file")
        for key in ("hook_id", "url", "format", "events"):
            if key not in item:
                raise click.BadParameter(f"{where}: {key!r} is required", param_hint="--hooks-file")
        events: list[tuple[str, str]] = []
        for text in item["events"]:
            try:
                resource, event_type = params.parse_event(str(text))
            except ValueError as exc:
                raise click.BadParameter(f"{where}.events: {exc}", param_hint="--hooks-file") from None
            if event_type != "*":
                events.append((resource, event_type))
                continue
            if catalog is None:
                catalog = {
                    r.resource_name.lower(): (r.resource_name, r.event_types)
                    for r in client.list_resources(Scope.PROJECT, page_size=1000)
                }
            entry = catalog.get(resource.lower())
            if entry is None:
                raise click.BadParameter(
                    f"{where}.events: {resource!r} is not a project-level resource;"
                    " see `tidings catalog resources --scope project`",
                    param_hint="--hooks-file",
                )
            events += [(entry[0], t) for t in entry[1]]
        ordering = item.get("ordering")
        if ordering is not None and ordering not in ORDERINGS:
            raise click.BadParameter(
                f"{where}.ordering: {ordering!r} is not one of {', '.join(ORDERINGS)}", param_hint="--hooks-file"
            )
        found.append(
            HookDefinition(
                hook_id=str(item["hook_id"]),
                destination_url=str(item["url"]),
                payload_format=str(item["format"]),
                events=tuple(dict.fromkeys(events)),
                display_name=str(item.get("name", "")),
                authorization_header=str(item.get("auth_header", "")),
                ordering=ORDERINGS[ordering] if ordering else None,
                max_concurrency=item.get("max_concurrency"),
                signing_disabled=not item.get("signing", True),
            )
        )
    return found


def print_template(env: Env, template: Template) -> None:
    if env.out.as_json:
        env.out.json(template)
        return
    env.out.print(
        fields_table(
            [
                ("name", template.name),
                ("display name", template.display_name or "-"),
                ("revision", template.revision),
                ("created", when(template.create_time)),
                ("updated", when(template.update_time)),
            ]
        )
    )
    t = table("HOOK ID", "URL", "FORMAT", "EVENTS", "AUTHORIZATION", "SIGNING")
    for d in template.hooks:
        events = ", ".join(f"{r}:{e}" for r, e in d.events)
        t.add_row(
            d.hook_id,
            d.destination_url,
            d.payload_format,
            events,
            d.authorization_header or "-",
            "off" if d.signing_disabled else "on",
        )
    env.out.print(t)


@templates.command(epilog=HOOKS_FILE_HELP)
@click.option("--company", required=True, type=params.COMPANY, help="The template's company, e.g. 8.")
@click.option("--id", "template_id", required=True, help="The template's id (lowercase, digits, hyphens).")
@click.option("--name", "display_name", default="", help="A label for people.")
@click.option("--hooks-file", type=click.File("r"), required=True, help="The hook definitions (JSON); - for stdin.")
@pass_env
def create(env: Env, company: str, template_id: str, display_name: str, hooks_file: TextIO) -> None:
    """Create a template from a file of hook definitions."""
    client = env.client()
    created = client.create_template(
        company, template_id, load_definitions(client, hooks_file), display_name=display_name
    )
    if not env.out.as_json:
        env.out.print(Text("created ", style="green") + Text(created.name, style="bold"))
    print_template(env, created)


@templates.command(name="list", epilog="\b\nExample:\n  tidings templates list --company 8")
@click.option("--company", required=True, type=params.COMPANY, help="The company, e.g. 8.")
@pass_env
def list_(env: Env, company: str) -> None:
    """List a company's templates."""
    found = list(env.client().list_templates(company, page_size=1000))
    if env.out.as_json:
        env.out.json(found)
        return
    t = table("NAME", "REVISION", "HOOKS", "UPDATED", "DISPLAY NAME")
    for tpl in found:
        t.add_row(tpl.name, str(tpl.revision), str(len(tpl.hooks)), when(tpl.update_time), tpl.display_name)
    env.out.print(t)
    env.out.note(f"{len(found)} template(s)")


@templates.command(epilog="\b\nExample:\n  tidings templates show companies/8/templates/standard")
@click.argument("template")
@pass_env
def show(env: Env, template: str) -> None:
    """Show a template and its hook definitions (Authorization headers masked)."""
    print_template(env, env.client().get_template(template))


@templates.command(epilog=HOOKS_FILE_HELP)
@click.argument("template")
@click.option("--name", "display_name", help="A new label.")
@click.option("--hooks-file", type=click.File("r"), help="Replace the hook definitions (JSON); - for stdin.")
@pass_env
def update(env: Env, template: str, display_name: str | None, hooks_file: TextIO | None) -> None:
    """Change a template; its revision goes up. Hooks already made from it stay as they are."""
    if display_name is None and hooks_file is None:
        raise click.UsageError("nothing to change: give --name or --hooks-file")
    client = env.client()
    hooks = load_definitions(client, hooks_file) if hooks_file is not None else None
    print_template(env, client.update_template(template, display_name=display_name, hooks=hooks))


@templates.command(epilog="\b\nExample:\n  tidings templates delete companies/8/templates/standard --yes")
@click.argument("template")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@pass_env
def delete(env: Env, template: str, yes: bool) -> None:
    """Delete a template; the hooks made from it stay."""
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("not deleting without confirmation: add --yes")
        confirm(f"Delete {template}? Hooks made from it stay.")
    env.client().delete_template(template)
    if env.out.as_json:
        env.out.json({"deleted": template})
    else:
        env.out.print(Text("deleted ", style="red") + Text(template))


@templates.command(
    epilog="\b\nExamples:\n  tidings templates apply companies/8/templates/standard --project 8/6778"
    "\n  tidings --json templates apply companies/8/templates/standard --project 8/6778 \\\n"
    "      | jq -r '.created[] | .name + \" \" + .signing_secret'   # keep the secrets"
)
@click.argument("template")
@click.option("--project", required=True, type=params.PROJECT, help="The project, COMPANY/PROJECT, e.g. 8/6778.")
@pass_env
def apply(env: Env, template: str, project: str) -> None:
    """Make a project's hooks from a template, all or none.

    The new hooks' signing secrets are printed here, and only here. Applying again makes
    nothing and says so.
    """
    if project.endswith("/-"):
        raise click.UsageError("--project needs one project, not '-'")
    applied = env.client().apply_template(template, project)
    if env.out.as_json:
        env.out.json(applied)
        return
    if applied.already_applied:
        env.out.print(f"{template} was applied to {project} already: nothing was created")
    rows: list[tuple[str, Any]] = [(h.name, Text(h.signing_secret, style="bold")) for h in applied.created]
    rows += [(name, "made earlier, left as it is") for name in applied.existing]
    if rows:
        env.out.print(fields_table(rows))
    if applied.created:
        env.out.print(Text(f"created {len(applied.created)} hook(s) from revision {applied.revision}", style="green"))
        warn_secret_shown_once(env, applied.created[0])
