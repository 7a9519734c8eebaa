"""``tidings tokens``: create, list, show and revoke bearer tokens (an owner of scope all)."""

from __future__ import annotations

import click
from rich.text import Text

from tidings_client.cli.app import CONTEXT_SETTINGS, Env, pass_env
from tidings_client.cli.output import fields_table, table, when
from tidings_client.types import Role, Token


@click.group(
    context_settings=CONTEXT_SETTINGS,
    epilog="\b\nExamples:\n  tidings tokens create --name ingest --role publisher --scope companies/8\n"
    "  tidings tokens list\n  tidings tokens revoke tokens/3f9c0a1b2c3d4e5f",
)
def tokens() -> None:
    """Manage the bearer tokens callers authenticate with (the first one: `tidings-server tokens create`)."""


def _name(value: str) -> str:
    return value if value.startswith("tokens/") else f"tokens/{value}"


def _rows(token: Token) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("name", token.name),
        ("display name", token.display_name),
        ("role", token.role.value),
        ("scope", token.scope),
        ("created", when(token.create_time)),
        ("last used", when(token.last_used_time)),
        ("revoked", when(token.revoke_time)),
    ]
    if token.client_cert_name:
        rows.append(("client certificate", token.client_cert_name))
    if token.secret:
        rows.append(("secret", Text(token.secret, style="bold")))
    return rows


@tokens.command(
    epilog="\b\nExamples:\n  tidings tokens create --name ops --role owner\n"
    "  tidings --json tokens create --name ingest --role publisher --scope companies/8 | jq -r .secret\n"
    "  tidings tokens create --name erp --role publisher --scope companies/8 --client-cert-name erp.internal"
)
@click.option("--name", "display_name", required=True, help="Whose token this is (a service, a person).")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True, help="What it may do.")
@click.option("--scope", default="all", show_default=True, help="all, companies/{c} or companies/{c}/projects/{p}.")
@click.option(
    "--client-cert-name",
    default="",
    help="Bind the principal to mutual-TLS client certificates with this common name or SAN (no secret).",
)
@pass_env
def create(env: Env, display_name: str, role: str, scope: str, client_cert_name: str) -> None:
    """Create a token and show its secret: the only time it is ever shown. With
    --client-cert-name, a principal for callers presenting that client certificate instead."""
    made = env.client().create_token(display_name, Role(role), scope=scope, client_cert_name=client_cert_name)
    if env.out.as_json:
        env.out.json(made)
        return
    env.out.print(fields_table(_rows(made)))
    if made.client_cert_name:
        env.out.note(f"callers presenting a verified client certificate named {made.client_cert_name!r} act as it")
        return
    env.out.note("keep the secret: it is never shown again (send it with --token or TIDINGS_TOKEN)")


@tokens.command(name="list", epilog="\b\nExamples:\n  tidings tokens list\n  tidings --json tokens list")
@pass_env
def list_(env: Env) -> None:
    """Every token, revoked ones too (never their secrets)."""
    found = list(env.client().list_tokens(page_size=1000))
    if env.out.as_json:
        env.out.json(found)
        return
    t = table("NAME", "DISPLAY NAME", "ROLE", "SCOPE", "LAST USED", "REVOKED")
    for tok in found:
        used, revoked = when(tok.last_used_time), when(tok.revoke_time)
        t.add_row(tok.name, tok.display_name, tok.role.value, tok.scope, used, revoked)
    env.out.print(t)
    env.out.note(f"{len(found)} token(s)")


@tokens.command(epilog="\b\nExamples:\n  tidings tokens show tokens/3f9c0a1b2c3d4e5f")
@click.argument("token")
@pass_env
def show(env: Env, token: str) -> None:
    """One token (TOKEN is tokens/{id} or the id)."""
    found = env.client().get_token(_name(token))
    if env.out.as_json:
        env.out.json(found)
        return
    env.out.print(fields_table(_rows(found)))


@tokens.command(epilog="\b\nExamples:\n  tidings tokens revoke tokens/3f9c0a1b2c3d4e5f")
@click.argument("token")
@pass_env
def revoke(env: Env, token: str) -> None:
    """Revoke a token: every call with it is refused from the next one on."""
    gone = env.client().revoke_token(_name(token))
    if env.out.as_json:
        env.out.json(gone)
        return
    env.out.note(f"revoked {gone.name} ({gone.display_name}) at {when(gone.revoke_time)}")
