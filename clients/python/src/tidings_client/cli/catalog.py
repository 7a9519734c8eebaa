"""``tidings catalog``: what hooks can select (resources and their event types) and payload formats."""

from __future__ import annotations

import click

from tidings_client.cli.app import CONTEXT_SETTINGS, Env, pass_env
from tidings_client.cli.output import table
from tidings_client.types import Scope


@click.group(
    context_settings=CONTEXT_SETTINGS,
    epilog="\b\nExamples:\n  tidings catalog formats\n  tidings catalog resources --scope company --search change",
)
def catalog() -> None:
    """Browse what hooks can select and the payload formats they can use."""


RESOURCES_EXAMPLES = """\b
Examples:
  tidings catalog resources                       # project resources
  tidings catalog resources --scope company
  tidings catalog resources --format procore.v4 --search 'change order'
"""


@catalog.command(epilog=RESOURCES_EXAMPLES)
@click.option(
    "--scope",
    type=click.Choice([s.value for s in Scope]),
    default=Scope.PROJECT.value,
    show_default=True,
    help="Resources of project hooks or of company hooks.",
)
@click.option("--format", "payload_format", default="", help="Only resources usable with this payload format.")
@click.option("--search", default="", help="Only resources whose name contains this text (any case).")
@pass_env
def resources(env: Env, scope: str, payload_format: str, search: str) -> None:
    """Resources of a scope, with their event types and the hooks that may select them.

    Company hooks may select project-level resources too: they then receive them from every
    project of the company, or from the projects the hook lists (`hooks create --projects`).
    """
    found = [
        r
        for r in env.client().list_resources(Scope(scope), payload_format=payload_format, page_size=1000)
        if search.lower() in r.resource_name.lower()
    ]
    if env.out.as_json:
        env.out.json(found)
        return
    t = table("RESOURCE", "EVENTS", "SELECTABLE BY", "CATALOG")
    for r in found:
        hooks = ", ".join(f"{s.value} hooks" for s in r.hook_scopes)
        t.add_row(r.resource_name, ", ".join(r.event_types), hooks, r.catalog)
    env.out.print(t)
    env.out.note(f"{len(found)} resource(s)")


@catalog.command(epilog="\b\nExamples:\n  tidings catalog formats\n  tidings --json catalog formats")
@pass_env
def formats(env: Env) -> None:
    """Payload formats the server has loaded."""
    found = list(env.client().list_payload_formats(page_size=1000))
    if env.out.as_json:
        env.out.json(found)
        return
    t = table("FORMAT", "CONTENT TYPE", "PROVIDED BY", "DESCRIPTION")
    for f in found:
        t.add_row(f.name, f.content_type, f"{f.distribution} {f.version}", f.description)
    env.out.print(t)
