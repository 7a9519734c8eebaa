"""``tidings-server secrets``: create a key file, and re-encrypt a store's secrets under a new key.

A rotation, with the server running: ``secrets rotate-key --store URL --secrets-key-file PATH
--new-key`` puts a new key first in the keyring file, then re-seals every hook page by page. A
server reading the same file learns the new key when it next meets it (or before its next
write), and keeps opening what the old key sealed until the walk is done; ``--retire-old`` then
leaves only the new key in the file.

A SQLite file has one process at a time: when a running server owns it, rotate-key cannot walk
it. It sends that server (the pid its lock file names) SIGHUP instead, which has the server
re-read the key file and walk the store itself, and watches the file read-only (WAL lets a
reader in beside the writer) until every secret is under the newest key; only then does
``--retire-old`` drop the older keys. ``secrets status`` reads such a file read-only too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from tidings_server.domain.ports import Store
from tidings_server.keys import ENV_VAR, KeySource, add_key, init_key, retire_old_keys
from tidings_server.plugins.manager import PluginError, Plugins
from tidings_server.plugins.spec import StorageBackend
from tidings_server.status_report import read_only_url
from tidings_server.stores.sealed import Audit, SealedStore, audit, reseal_all
from tidings_server.stores.sqlite import StoreInUseError

POLL = 0.2
"""Seconds between two read-only looks at a SQLite file its server is re-encrypting."""


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = commands.add_parser(
        "secrets",
        help="create the key that encrypts hooks' secrets at rest, or re-encrypt a store under a new one",
        description="Hooks' Authorization headers and signing secrets are encrypted at rest (AES-256-GCM) under"
        " a keyring: a file of base64 keys, newest first (or "
        f"{ENV_VAR}, comma-separated). The newest key encrypts; every key decrypts.",
    )
    sub = top.add_subparsers(dest="secrets_command", required=True, metavar="COMMAND")
    init = sub.add_parser(
        "init-key", help="create a keyring file with one new key, readable by its owner only (mode 0600)"
    )
    init.add_argument("path", type=Path, metavar="PATH")
    init.add_argument("--if-missing", action="store_true", help="do nothing (and succeed) when PATH exists")
    rotate = sub.add_parser(
        "rotate-key",
        help="re-encrypt every hook's and template's secrets under the keyring's newest key, in batches,"
        " while servers run",
        description="Walk every hook and template of the store and re-encrypt each secret not encrypted under the"
        " newest key (secrets stored before encryption at rest too), one short transaction per hook or template.",
    )
    rotate.add_argument("--store", required=True, metavar="URL", help="the store servers use")
    rotate.add_argument(
        "--secrets-key-file",
        type=Path,
        metavar="PATH",
        help=f"the keyring file servers read (default: the keys in {ENV_VAR}, which cannot take --new-key)",
    )
    rotate.add_argument("--new-key", action="store_true", help="first put a newly made key at the top of the file")
    rotate.add_argument(
        "--retire-old", action="store_true", help="after a walk that leaves nothing under older keys, drop them"
    )
    rotate.add_argument(
        "--batch-size", type=int, default=100, metavar="N", help="hooks per page of rotate-key's own walk (default 100)"
    )
    rotate.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="a SQLite file a running server owns is re-encrypted by that server (sent SIGHUP): how long to wait"
        " for it to finish before giving up, nothing retired (default 60)",
    )
    status = sub.add_parser(
        "status",
        help="count the store's hooks and templates by how their secrets are kept: under the newest key, an older"
        " one, or plaintext",
        description="Walk every hook and template and check its secrets against the keyring, changing nothing."
        " Exits 1 when"
        " any secret is not under the newest key (rotate-key fixes that) and 2 when one does not open.",
    )
    status.add_argument("--store", required=True, metavar="URL", help="the store servers use")
    status.add_argument("--secrets-key-file", type=Path, metavar="PATH", help=f"the keyring file (default: {ENV_VAR})")


def run(args: argparse.Namespace) -> int:
    try:
        if args.secrets_command == "init-key":
            return _init_key(args.path, if_missing=args.if_missing)
        if args.secrets_command == "status":
            return trio.run(_status, args)
        return trio.run(_rotate, args)
    except (ValueError, OSError, PluginError) as exc:
        print(f"tidings-server secrets: {exc}", file=sys.stderr)
        return 2


def _init_key(path: Path, *, if_missing: bool) -> int:
    if path.exists():
        if if_missing:
            return 0
        print(f"tidings-server secrets: {path} exists; a key is never overwritten", file=sys.stderr)
        return 1
    kid = init_key(path)
    print(f"created {path} (mode 0600) with key {kid}")
    return 0


def key_source(path: Path | None, env: str | None) -> KeySource | None:
    """The keyring from ``path`` or else from the environment's value; None when neither."""
    if path is not None and env:
        raise ValueError(f"{ENV_VAR} is set too; give the keys one way")
    if path is not None:
        return KeySource.from_file(path)
    if env:
        return KeySource.from_env(env)
    return None


async def _status(args: argparse.Namespace) -> int:
    keys = key_source(args.secrets_key_file, os.environ.get(ENV_VAR))
    if keys is None:
        raise ValueError(f"no keyring: give --secrets-key-file or set {ENV_VAR}")
    backend = Plugins.load().storage_backend_for(args.store)
    async with _opened(backend, args.store) as (inner, owner):
        if owner is not None:
            print(f"reading the store read-only beside the server that owns it (pid {owner.pid})", file=sys.stderr)
        found = await audit(SealedStore(inner, keys))
    print(f"{found.hooks} hooks; keyring {', '.join(keys.keyring.ids)} (the first encrypts)")
    print(f"  {found.current} with every secret under the newest key")
    print(f"  {found.stale} with a secret under an older key")
    print(f"  {found.plaintext} with a secret unencrypted (from before encryption at rest)")
    print(f"  {len(found.unopenable)} with a secret no key of the keyring opens")
    for problem in found.unopenable:
        print(f"    {problem}")
    print(f"{found.templates} templates (their hooks' Authorization headers)")
    print(f"  {found.templates_current} with every one under the newest key")
    print(f"  {found.templates_stale} with one under an older key")
    print(f"  {found.templates_plaintext} with one unencrypted")
    print(f"  {len(found.templates_unopenable)} with one no key of the keyring opens")
    for problem in found.templates_unopenable:
        print(f"    {problem}")
    if found.not_opening:
        return 2
    return 1 if found.left else 0


@asynccontextmanager
async def _opened(backend: StorageBackend, url: str) -> AsyncIterator[tuple[Store, StoreInUseError | None]]:
    """The store, opened as its only process; or, when a running server owns the SQLite file,
    opened read-only beside it, with the refusal that names that server."""
    async with contextlib.AsyncExitStack() as stack:
        owner: StoreInUseError | None = None
        try:
            inner = await stack.enter_async_context(backend.open(url))
        except StoreInUseError as exc:
            owner = exc
        if owner is not None:
            inner = await stack.enter_async_context(backend.open(read_only_url(url)))
        yield inner, owner


async def _rotate(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0 < args.wait < 10**7:  # also refuses nan and inf
        raise ValueError(f"--wait must be a positive number of seconds below 10000000, got {args.wait:g}")
    path: Path | None = args.secrets_key_file
    if (args.new_key or args.retire_old) and path is None:
        raise ValueError("--new-key and --retire-old change the keyring file: give --secrets-key-file")
    if args.new_key and path is not None:
        print(f"added key {add_key(path)} first in {path}")
    keys = key_source(path, os.environ.get(ENV_VAR))
    if keys is None:
        raise ValueError(f"no keyring: give --secrets-key-file or set {ENV_VAR}")
    plugins = Plugins.load()
    backend = plugins.storage_backend_for(args.store)
    primary = keys.keyring.primary_id
    async with _opened(backend, args.store) as (inner, owner):
        store = SealedStore(inner, keys)
        found = await audit(store)
        if found.not_opening:
            raise ValueError(f"stored secrets do not open with this keyring: {found.not_opening[0]}")
        if owner is not None:
            return await _rotated_by_owner(store, found, owner, args, path)
        hooks, templates = await reseal_all(store, batch=args.batch_size)
        left = await audit(store)
    if left.left:
        print(
            f"{hooks} of {left.hooks} hooks and {templates} of {left.templates} templates re-encrypted;"
            f" {left.left} still changing under other servers' writes"
        )
        print(f"tidings-server secrets: {left.left} hooks or templates still changing; run again", file=sys.stderr)
        return 1
    print(
        f"{hooks} of {left.hooks} hooks and {templates} of {left.templates} templates re-encrypted;"
        f" every secret is now under key {primary}"
    )
    if args.retire_old and path is not None:
        retired = retire_old_keys(path)
        print(f"removed {len(retired)} older key(s) from {path}: {', '.join(retired) or 'none'}")
    return 0


async def _rotated_by_owner(
    store: SealedStore, found: Audit, owner: StoreInUseError, args: argparse.Namespace, path: Path | None
) -> int:
    """Have the server that owns a SQLite file re-encrypt it (SIGHUP), and watch it do so
    read-only; retire the older keys only once every secret is under the newest."""
    primary = store.keyring.primary_id
    if path is None:
        raise ValueError(
            f"{args.store} is owned by a running tidings-server (pid {owner.pid or 'unknown'}), which re-encrypts"
            " it itself on SIGHUP, under the newest key of its key file: give --secrets-key-file, the file it reads"
        )
    if owner.pid is None:
        raise ValueError(f"{owner}. Its lock file names no pid to send SIGHUP to")
    try:
        os.kill(owner.pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ValueError(f"the server that owned the store (pid {owner.pid}) is gone; run again") from None
    except PermissionError:
        raise ValueError(f"cannot send SIGHUP to pid {owner.pid}, the store's owner: run as its user") from None
    print(f"sent SIGHUP to pid {owner.pid}, the server that owns the store; waiting for it to re-encrypt it")
    left = found
    clean = 0
    with trio.move_on_after(args.wait):
        # Two clean looks in a row: a write the server began under the old key just before it
        # read the new file, committed after a look had passed it, shows in the second.
        while True:
            left = await audit(store)
            clean = clean + 1 if not left.left else 0
            if clean == 2:
                break
            await trio.sleep(POLL)
    if left.left:
        print(
            f"tidings-server secrets: the server that owns the store (pid {owner.pid}) did not re-encrypt it within"
            f" {args.wait:g} s: {left.left} hooks or templates are still not under key {primary}. Does it read"
            f" {path} (its --secrets-key-file)? No key was retired; run rotate-key again (without --new-key)",
            file=sys.stderr,
        )
        return 1
    hooks = found.hooks - found.current
    templates = found.templates - found.templates_current
    print(
        f"{hooks} of {left.hooks} hooks and {templates} of {left.templates} templates re-encrypted by the server;"
        f" every secret is now under key {primary}"
    )
    if args.retire_old:
        retired = retire_old_keys(path)
        print(f"removed {len(retired)} older key(s) from {path}: {', '.join(retired) or 'none'}")
    return 0
