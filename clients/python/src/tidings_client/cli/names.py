"""Short names on the command line: a hook or delivery id relative to the profile's parent,
completed from the server.

With a profile whose parent is ``companies/8/projects/6778``, ``erp-sync`` means
``companies/8/projects/6778/hooks/erp-sync`` and ``erp-sync/deliveries/01J…`` (or
``erp-sync/01J…``) that hook's delivery; with a hook as the parent, a bare event id is one
of its deliveries. Under a company, ``6778/erp-sync`` is project 6778's hook, as a company's
delivery list shows it (a company hook may have the same id). ``--project C/P`` or
``--company C`` on the command line sets the parent for one command instead. A name that
starts with ``companies/`` is taken as it is.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from tidings_client.cli import params
from tidings_client.cli.app import Env, client_options
from tidings_client.cli.config import Settings, resolve
from tidings_client.client import Client
from tidings_client.errors import TidingsError
from tidings_client.options import Retry

COMPLETION_TIMEOUT = 2.0  # seconds a completion may wait for the server before offering nothing
_EVENT_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def hook_parent(settings: Settings) -> str | None:
    """Where short hook ids live: the profile's parent, or the parent of its hook."""
    parent = settings.parent
    if not parent:
        return None
    return parent.split("/hooks/", 1)[0]


def full_hook(value: str, settings: Settings) -> str:
    if value.startswith("companies/"):
        return value.rstrip("/")
    base = hook_parent(settings)
    if base is None:
        raise ValueError(
            f"{value!r} is a short hook id: give the full name (companies/C[/projects/P]/hooks/H),"
            " or set `parent` in the profile"
        )
    project, slash, hook = value.partition("/")
    if slash and "/projects/" not in base and project.isdigit() and hook and "/" not in hook:
        return f"{base}/projects/{project}/hooks/{hook}"  # PROJECT/ID under a company, as lists show it
    return f"{base}/hooks/{value}"


def hook_label(hook: str, parent: str) -> str:
    """A hook as short as the list it is in allows, and as a short name takes it: its id
    under a project, and in a company's list the company's own hooks by id and a project's
    as PROJECT/ID (a company hook and a project hook may share an id); the full name when
    it is not under ``parent``."""
    rest = hook.removeprefix(parent.rstrip("/") + "/")
    if rest.startswith("hooks/"):
        return rest.removeprefix("hooks/")
    project, found, hook_id = rest.removeprefix("projects/").partition("/hooks/")
    return f"{project}/{hook_id}" if rest.startswith("projects/") and found else hook


def short_delivery(name: str, parent: str) -> str:
    """A delivery's name as ``hook_label``/deliveries/EVENT_ID, for completion under ``parent``."""
    hook, _, event = name.partition("/deliveries/")
    return f"{hook_label(hook, parent)}/deliveries/{event}"


def full_delivery(value: str, settings: Settings) -> str:
    if value.startswith("companies/"):
        return value.rstrip("/")
    if _EVENT_ID.fullmatch(value) and settings.parent and "/hooks/" in settings.parent:
        return f"{settings.parent}/deliveries/{value}"
    hook, _, event = value.rpartition("/")
    hook = hook.removesuffix("/deliveries")
    if not hook or not _EVENT_ID.fullmatch(event):
        raise ValueError(f"{value!r} is not a delivery: give HOOK/deliveries/EVENT_ID (HOOK may be a short id)")
    return f"{full_hook(hook, settings)}/deliveries/{event}"


_GIVEN_PARENT = "tidings.parent"  # ctx.meta key: a --project/--company given to the command


def _settings(ctx: click.Context) -> Settings:
    env = ctx.find_object(Env)
    if env is not None:
        return env.settings
    # Completing: the root command has not run, so read its options as it would.
    root = ctx.find_root().params
    keys = ("target", "token", "tls", "ca_cert", "client_cert", "client_key", "tls_server_name", "timeout")
    flags = {k: root.get(k) for k in keys}
    config = root.get("config_path")
    settings = resolve(flags, Path(config) if config else None, root.get("profile"), must_exist=False)
    given = ctx.meta.get(_GIVEN_PARENT)
    return dataclasses.replace(settings, parent=given) if given else settings


def _given_parent(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Make ``--project``/``--company`` the parent short ids are relative to, for this command,
    before its arguments are read (the options are eager)."""
    if value is None:
        return
    other = ctx.meta.get(_GIVEN_PARENT)
    if other is not None and other != value:
        raise click.UsageError("give --project or --company, not both")
    ctx.meta[_GIVEN_PARENT] = value
    env = ctx.find_object(Env)
    if env is not None:
        env.settings = dataclasses.replace(env.settings, parent=value)


def accept_parent_options(command: click.Command) -> None:
    """Give every command that takes a hook, delivery or parent name ``--project C/P`` and
    ``--company C``, which set what short ids are relative to (as a profile's ``parent`` does);
    commands with options of those names of their own keep them."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            accept_parent_options(sub)
        return
    takes_names = any(isinstance(p.type, _Name) for p in command.params)
    own = {name for p in command.params for name in p.opts}
    if not takes_names or own & {"--project", "--company"}:
        return
    command.params += [
        click.Option([flag], type=kind, is_eager=True, expose_value=False, callback=_given_parent, help=text)
        for flag, kind, text in _PARENT_OPTIONS
    ]


_PARENT_OPTIONS = (
    ("--project", params.PROJECT, "Short hook ids are under COMPANY/PROJECT, e.g. 8/6778 (not the profile's parent)."),
    ("--company", params.COMPANY, "Short hook ids are company hooks of COMPANY, e.g. 8 (not the profile's parent)."),
)


def _client(settings: Settings) -> Client:
    """The connection of the command being completed (same target, TLS and token), impatient."""
    options = dataclasses.replace(client_options(settings), timeout=COMPLETION_TIMEOUT, retry=Retry(max_attempts=1))
    return Client(options=options)


class _Name(click.ParamType[str]):
    def __init__(self, name: str) -> None:
        self.name = name

    def expand(self, value: str, settings: Settings) -> str:
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if not isinstance(value, str) or ctx is None:
            return str(value)
        try:
            return self.expand(value, _settings(ctx))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class HookName(_Name):
    """A hook's full name, or its id under the profile's parent; completes from the server."""

    def __init__(self, *, parent_ok: bool = False) -> None:
        super().__init__("hook")
        self.parent_ok = parent_ok  # also a project or company (a PARENT argument)

    def expand(self, value: str, settings: Settings) -> str:
        if self.parent_ok and value.startswith("companies/"):
            return value.rstrip("/")
        return full_hook(value, settings)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            settings = _settings(ctx)
            base = hook_parent(settings)
            if base is None:
                return []
            with _client(settings) as client:
                found = [h.name for h in client.list_hooks(base, page_size=200)]
        except (TidingsError, click.ClickException, OSError):
            return []  # no server, no profile: complete nothing rather than fail the shell
        short = [n.rsplit("/", 1)[-1] for n in found]
        offered = found if incomplete.startswith("companies/") else short
        return [CompletionItem(n) for n in offered if n.startswith(incomplete)]


class DeliveryName(_Name):
    """A delivery's full name, or HOOK/deliveries/EVENT_ID with a short hook id."""

    def __init__(self) -> None:
        super().__init__("delivery")

    def expand(self, value: str, settings: Settings) -> str:
        return full_delivery(value, settings)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            settings = _settings(ctx)
            hook, _, _ = incomplete.rpartition("/")
            hook = hook.removesuffix("/deliveries")
            if hook:
                parent = full_hook(hook, settings)
            elif settings.parent:
                parent = settings.parent
            else:
                return []
            with _client(settings) as client:
                names = [d.name for _, d in zip(range(50), client.list_deliveries(parent, page_size=50), strict=False)]
        except (TidingsError, click.ClickException, ValueError, OSError):
            return []
        base = hook_parent(settings) or ""
        relative = [short_delivery(n, base) if base else n for n in names]
        offered = names if incomplete.startswith("companies/") else relative
        return [CompletionItem(n) for n in offered if n.startswith(incomplete)]


HOOK = HookName()
PARENT = HookName(parent_ok=True)
DELIVERY = DeliveryName()
