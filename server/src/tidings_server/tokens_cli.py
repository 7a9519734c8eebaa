"""``tidings-server tokens``: create, list and revoke bearer tokens on the store directly, and
principals bound to a client certificate (``create --client-cert-name``), which only this
command makes.

This is how the first owner token comes to exist (every later one can be made over the API by
an owner, `tidings tokens create`). It opens the store as a server does: a SQLite file has one
process at a time, so stop the server first; a PostgreSQL store is shared, and a revocation
made here holds on every server from its next call.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

import trio

from tidings_server.domain.errors import TidingsError
from tidings_server.domain.tokens import REACH_FORMS, Role, Token, TokenService, parse_reach, parse_role
from tidings_server.plugins.manager import PluginError, Plugins


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = commands.add_parser(
        "tokens",
        help="create, list and revoke the bearer tokens callers authenticate with, on the store directly",
        description="Manage tokens on the store itself, for the first owner token (stop a server on a SQLite"
        " file first). A token's secret is shown once, at creation; the store keeps only its hash.",
    )
    sub = top.add_subparsers(dest="tokens_command", required=True, metavar="COMMAND")
    create = sub.add_parser("create", help="create a token and print its secret (stdout, once) and what it is (stderr)")
    create.add_argument("--store", required=True, metavar="URL", help="the store servers use")
    create.add_argument("--name", required=True, help="whose token this is (a service, a person)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--scope", default="all", help=f"{REACH_FORMS} (default all)")
    create.add_argument(
        "--client-cert-name",
        metavar="NAME",
        help="bind the principal to a client certificate instead of a secret: a caller presenting a certificate"
        " verified by --client-ca whose common name or one of whose SANs is NAME authenticates as it (no secret"
        " is made, and no bearer token can ever match it)",
    )
    listing = sub.add_parser("list", help="list every token, revoked ones too (never their secrets)")
    listing.add_argument("--store", required=True, metavar="URL", help="the store servers use")
    listing.add_argument("--json", action="store_true", help="print one JSON object per line")
    revoke = sub.add_parser("revoke", help="revoke a token: calls with it are refused from the next one on")
    revoke.add_argument("--store", required=True, metavar="URL", help="the store servers use")
    revoke.add_argument("token", metavar="TOKEN", help="tokens/{id}, or the id alone")


def run(args: argparse.Namespace) -> int:
    try:
        return trio.run(_run, args)
    except (TidingsError, ValueError, PluginError) as exc:  # a SQLite file in use is a ValueError
        print(f"tidings-server tokens: {exc}", file=sys.stderr)
        return 2


async def _run(args: argparse.Namespace) -> int:
    backend = Plugins.load().storage_backend_for(args.store)
    async with backend.open(args.store) as store:
        tokens = TokenService(store, lambda: datetime.now(UTC))
        if args.tokens_command == "create" and args.client_cert_name is not None:
            t = await tokens.create_certificate_principal(
                args.name, parse_role("--role", args.role), parse_reach("--scope", args.scope), args.client_cert_name
            )
            print(
                f"created {t.name} ({t.role.value}, scope {t.scope}) for {t.display_name!r}, bound to client"
                f" certificates named {t.client_cert_name!r} (common name or SAN); it has no secret"
            )
            return 0
        if args.tokens_command == "create":
            issued = await tokens.create_token(
                args.name, parse_role("--role", args.role), parse_reach("--scope", args.scope)
            )
            print(issued.secret)
            t = issued.token
            print(
                f"created {t.name} ({t.role.value}, scope {t.scope}) for {t.display_name!r}; the secret above"
                " is shown this once",
                file=sys.stderr,
            )
            return 0
        if args.tokens_command == "revoke":
            name = args.token if args.token.startswith("tokens/") else f"tokens/{args.token}"
            t = await tokens.revoke_token(name)
            print(f"revoked {t.name} ({t.display_name!r}) at {_time(t.revoke_time)}")
            return 0
        found: list[Token] = []
        page = ""
        while True:
            listed = await tokens.list_tokens(1000, page)
            found.extend(listed.items)
            page = listed.next_page_token
            if not page:
                break
    for t in found:
        if args.json:
            print(json.dumps(_as_dict(t)))
        else:
            state = f"revoked {_time(t.revoke_time)}" if t.revoked else f"last used {_time(t.last_used_time)}"
            bound = "" if t.client_cert_name is None else f"  client certificate {t.client_cert_name!r}"
            print(f"{t.name}  {t.role.value:<9} {t.scope!s:<28} {t.display_name!r}{bound}  {state}")
    if not found and not args.json:
        print("no tokens")
    return 0


def _time(value: datetime | None) -> str:
    return "never" if value is None else value.isoformat(timespec="seconds")


def _as_dict(t: Token) -> dict[str, object]:
    return {
        "name": t.name,
        "display_name": t.display_name,
        "role": t.role.value,
        "scope": str(t.scope),
        "client_cert_name": t.client_cert_name,
        "create_time": t.create_time.isoformat(),
        "last_used_time": None if t.last_used_time is None else t.last_used_time.isoformat(),
        "revoke_time": None if t.revoke_time is None else t.revoke_time.isoformat(),
    }
