"""``tidings-server secrets rotate-key``: a store re-encrypted under a new key while its server
runs, and plaintext from before encryption at rest sealed for good."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from tests.harness import Api
from tests.http_sink import Request, Sink, running_sink
from tests.secrets.servers import SERVER, env, run, serving
from tests.secrets.spelling import found_in
from tidings.v1 import events_pb2, hooks_pb2, templates_pb2
from tidings_server.domain.signing import signature
from tidings_server.keys import init_key, read_keyring

PROJECT = "companies/8/projects/6778"
HOOKS = 240
TRIGGERED = 3  # hooks that get deliveries during the rotation


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def _auth(i: int) -> str:
    return f"Bearer hook-{i:04d}-0123456789abcdef0123"


_STORED = "SELECT name, authorization_header, signing_secret FROM hooks ORDER BY name"


def _stored(db: Path) -> list[tuple[str, str, str]]:
    # Closed here, not when collected: a reader still open when the server stops keeps it from
    # checkpointing the WAL into the file, and the old pages would linger in the file.
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [(str(a), str(b), str(c)) for a, b, c in conn.execute(_STORED)]


def _stored_pg(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return [(str(a), str(b), str(c)) for a, b, c in conn.execute(_STORED).fetchall()]


def _create_hooks(api: Api, sink: Sink) -> list[str]:
    names = []
    for i in range(HOOKS):
        hook = api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=PROJECT,
                hook_id=f"h{i:04d}",
                hook=hooks_pb2.Hook(
                    destination_url=sink.url(f"/h{i}"), payload_format="procore.v4", authorization_header=_auth(i)
                ),
            )
        )
        names.append(hook.name)
        if i < TRIGGERED:
            api.hooks.BatchCreateTriggers(
                hooks_pb2.BatchCreateTriggersRequest(
                    parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
                )
            )
    return names


def _requests(api: Api, sink: Sink, resource_id: int) -> list[Request]:
    """Publish an RFI update; the requests each triggered hook's endpoint got for it."""
    reply = api.events.PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(
                    company_id=8, project_id=6778, resource_name="RFIs", resource_id=resource_id,
                    event_type="update", user_id=1,
                )
            ]
        )
    )  # fmt: skip
    event_id = reply.results[0].event_id

    def arrived() -> list[Request]:
        with sink.arrived:
            return [r for r in sink.requests if r.header("Tidings-Delivery-Id") == event_id]

    assert sink.wait_until(lambda: len(arrived()) == TRIGGERED, 15)
    return arrived()


def _deliver(api: Api, sink: Sink, resource_id: int) -> dict[str, str | None]:
    """Publish an RFI update; the Authorization header each triggered hook's endpoint got."""
    return {str(r.header("Tidings-Hook")): r.header("Authorization") for r in _requests(api, sink, resource_id)}


def test_rotate_key_while_the_server_runs(tmp_path: Path, sink: Sink, postgres_url: str) -> None:
    """On PostgreSQL, the store servers share (a SQLite file has one process at a time)."""
    keyfile = tmp_path / "secrets.key"
    old = init_key(keyfile)
    store = postgres_url
    expected = {f"{PROJECT}/hooks/h{i:04d}": _auth(i) for i in range(TRIGGERED)}
    with serving(store, "--secrets-key-file", str(keyfile)) as (port, _):
        api = Api.connect(port)
        try:
            names = _create_hooks(api, sink)
            assert {sealed.split(":")[2] for _, sealed, _ in _stored_pg(store)} == {old}
            rotating = subprocess.Popen(
                [str(SERVER), "secrets", "rotate-key", "--store", store, "--secrets-key-file", str(keyfile),
                 "--new-key", "--retire-old", "--batch-size", "16"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
            )  # fmt: skip
            # The server keeps reading, writing and delivering while the store is re-encrypted.
            reads = 0
            resource = 0
            while rotating.poll() is None or reads < 5:
                hook = api.hooks.GetHook(hooks_pb2.GetHookRequest(name=names[reads % HOOKS]))
                assert hook.authorization_header.endswith(_auth(reads % HOOKS)[-4:])
                resource += 1
                assert _deliver(api, sink, resource) == expected
                reads += 1
            out, err = rotating.communicate(timeout=60)
            assert rotating.returncode == 0, err
            [added, done, removed] = out.splitlines()
            new = read_keyring(keyfile).primary_id
            assert added == f"added key {new} first in {keyfile}"
            assert done == (
                f"{HOOKS} of {HOOKS} hooks and 0 of 0 templates re-encrypted; every secret is now under key {new}"
            )
            assert removed == f"removed 1 older key(s) from {keyfile}: {old}"
            assert read_keyring(keyfile).ids == (new,)
            assert {part.split(":")[2] for _, a, s in _stored_pg(store) for part in (a, s)} == {new}

            # Still serving: the server learnt the new key when it first met it.
            assert _deliver(api, sink, resource + 1) == expected
            changed = "Bearer changed-after-rotation-0123456789"
            api.hooks.UpdateHook(
                hooks_pb2.UpdateHookRequest(
                    hook=hooks_pb2.Hook(name=names[0], authorization_header=changed),
                    update_mask=field_mask_pb2.FieldMask(paths=["authorization_header"]),
                )
            )
            assert _deliver(api, sink, resource + 2) == {**expected, names[0]: changed}
            assert _stored_pg(store)[0][1].split(":")[2] == new
        finally:
            api.channel.close()
    with serving(store, "--secrets-key-file", str(keyfile)) as (port, _):
        api = Api.connect(port)
        assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=names[1])).authorization_header.endswith("0123")
        api.channel.close()


def test_plaintext_from_before_is_sealed_by_rotate_key_and_leaves_the_files(tmp_path: Path, sink: Sink) -> None:
    db = tmp_path / "db.sqlite3"
    store = f"sqlite:///{db}"
    with serving(store, "--plaintext-secrets") as (port, _):  # as a server before encryption at rest wrote it
        api = Api.connect(port)
        names = _create_hooks(api, sink)
        secrets = [_auth(i) for i in range(HOOKS)]
        api.channel.close()
    assert len(found_in([db], secrets)) == HOOKS
    keyfile = tmp_path / "secrets.key"
    kid = init_key(keyfile)
    with serving(store, "--secrets-key-file", str(keyfile)) as (port, lines):
        warnings = [line for line in lines if "unencrypted from before" in line]
        assert warnings
        assert f'"hooks": {HOOKS}' in warnings[0]
        api = Api.connect(port)
        assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=names[7])).authorization_header.endswith("0123")
        api.channel.close()
    # With no server owning the SQLite file, rotate-key walks it itself.
    status = run("secrets", "status", "--store", store, "--secrets-key-file", str(keyfile))
    assert (status.returncode, status.stdout.splitlines()) == (
        1,
        [
            f"{HOOKS} hooks; keyring {kid} (the first encrypts)",
            "  0 with every secret under the newest key",
            "  0 with a secret under an older key",
            f"  {HOOKS} with a secret unencrypted (from before encryption at rest)",
            "  0 with a secret no key of the keyring opens",
            "0 templates (their hooks' Authorization headers)",
            "  0 with every one under the newest key",
            "  0 with one under an older key",
            "  0 with one unencrypted",
            "  0 with one no key of the keyring opens",
        ],
    )
    result = run("secrets", "rotate-key", "--store", store, "--secrets-key-file", str(keyfile))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{HOOKS} of {HOOKS} hooks and 0 of 0 templates re-encrypted; every secret is now under key {kid}"
    ]
    status = run("secrets", "status", "--store", store, "--secrets-key-file", str(keyfile))
    assert (status.returncode, status.stdout.splitlines()[1]) == (
        0,
        f"  {HOOKS} with every secret under the newest key",
    )
    assert {part.split(":")[2] for _, a, s in _stored(db) for part in (a, s)} == {kid}
    # The plaintext rows were overwritten in place and their old space zeroed; once the WAL is
    # checkpointed away, nothing of them is left in the files.
    assert found_in([p for p in (db, db.with_name(db.name + "-wal")) if p.exists()], secrets) == []


def test_rotate_key_refuses_what_it_cannot_do_in_one_line(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    keyfile = tmp_path / "secrets.key"

    def refused(*args: str, extra_env: dict[str, str] | None = None) -> str:
        result = run("secrets", "rotate-key", "--store", store, *args, extra_env=extra_env)
        assert result.returncode == 2, result
        [line] = result.stderr.splitlines()
        return line

    assert refused() == "tidings-server secrets: no keyring: give --secrets-key-file or set TIDINGS_SECRETS_KEY"
    assert refused("--new-key", extra_env={"TIDINGS_SECRETS_KEY": "x"}) == (
        "tidings-server secrets: --new-key and --retire-old change the keyring file: give --secrets-key-file"
    )
    assert refused("--secrets-key-file", str(keyfile)).startswith("tidings-server secrets: [Errno 2] No such file")
    init_key(keyfile)
    assert refused("--secrets-key-file", str(keyfile), "--batch-size", "0") == (
        "tidings-server secrets: --batch-size must be at least 1, got 0"
    )
    for wait in ("0", "-1", "nan", "inf"):
        assert refused("--secrets-key-file", str(keyfile), "--wait", wait) == (
            f"tidings-server secrets: --wait must be a positive number of seconds below 10000000, got {wait}"
        )
    other = tmp_path / "other.key"
    init_key(other)
    with serving(store, "--secrets-key-file", str(other)) as (port, _):
        api = Api.connect(port)
        hook = api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=PROJECT, hook=hooks_pb2.Hook(destination_url="http://127.0.0.1:9/", payload_format="procore.v4")
            )
        )
        api.channel.close()
    before = keyfile.read_text()
    line = refused("--secrets-key-file", str(keyfile), "--retire-old")
    assert line.startswith(f"tidings-server secrets: stored secrets do not open with this keyring: hook {hook.name}")
    assert keyfile.read_text() == before


def _template(api: Api, company: int, auth: str) -> str:
    made = api.templates.CreateTemplate(
        templates_pb2.CreateTemplateRequest(
            parent=f"companies/{company}",
            template_id="standard",
            template=templates_pb2.Template(
                hooks=[
                    templates_pb2.HookDefinition(
                        hook_id="erp",
                        hook=hooks_pb2.Hook(
                            destination_url="http://127.0.0.1:9/erp",
                            payload_format="procore.v4",
                            authorization_header=auth,
                        ),
                    )
                ]
            ),
        )
    )
    return made.name


def test_rotate_key_re_encrypts_templates_too_before_the_old_key_goes(tmp_path: Path) -> None:
    """A template's hook definitions hold Authorization headers sealed like a hook's: a rotation
    that re-sealed hooks only, then retired the old key, would leave them unreadable."""
    db = tmp_path / "db.sqlite3"
    store = f"sqlite:///{db}"
    keyfile = tmp_path / "secrets.key"
    old = init_key(keyfile)
    auths = {company: f"Bearer template-{company}-0123456789abcdef" for company in (3, 4, 5)}
    with serving(store, "--secrets-key-file", str(keyfile)) as (port, _):
        api = Api.connect(port)
        names = {company: _template(api, company, auth) for company, auth in auths.items()}
        api.channel.close()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = [str(text) for (text,) in conn.execute("SELECT hooks FROM templates")]
    assert len(stored) == 3
    assert all(f":{old}:" in text for text in stored)
    result = run(
        "secrets", "rotate-key", "--store", store, "--secrets-key-file", str(keyfile), "--new-key", "--retire-old",
        "--batch-size", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    new = read_keyring(keyfile).primary_id
    assert read_keyring(keyfile).ids == (new,)
    assert result.stdout.splitlines()[1:] == [
        f"0 of 0 hooks and 3 of 3 templates re-encrypted; every secret is now under key {new}",
        f"removed 1 older key(s) from {keyfile}: {old}",
    ]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = [str(text) for (text,) in conn.execute("SELECT hooks FROM templates")]
    assert all(f":{new}:" in text and f":{old}:" not in text for text in stored)
    status = run("secrets", "status", "--store", store, "--secrets-key-file", str(keyfile))
    assert status.returncode == 0, status.stdout
    with serving(store, "--secrets-key-file", str(keyfile)) as (port, _):
        api = Api.connect(port)
        for company, name in names.items():
            shown = api.templates.GetTemplate(templates_pb2.GetTemplateRequest(name=name))
            assert shown.hooks[0].hook.authorization_header.endswith(auths[company][-4:])
        api.channel.close()


def _delivered_signed(api: Api, sink: Sink, resource_id: int, secrets: dict[str, str]) -> dict[str, str | None]:
    """``_deliver``, also checking each request's Standard Webhooks signature against its hook's
    signing secret (``secrets``, by hook name) over the exact bytes received."""
    requests = _requests(api, sink, resource_id)
    for r in requests:
        hook = str(r.header("Tidings-Hook"))
        message_id, timestamp = str(r.header("webhook-id")), int(str(r.header("webhook-timestamp")))
        assert r.header("webhook-signature") == signature(secrets[hook], message_id, timestamp, r.body), hook
    return {str(r.header("Tidings-Hook")): r.header("Authorization") for r in requests}


def test_rotate_key_on_a_sqlite_file_its_server_owns(tmp_path: Path, sink: Sink) -> None:
    """A SQLite file has one process: rotate-key has its owner re-encrypt it (SIGHUP) while it
    serves, watches read-only, and only then retires the old key."""
    db = tmp_path / "db.sqlite3"
    store = f"sqlite:///{db}"
    keyfile = tmp_path / "secrets.key"
    old = init_key(keyfile)
    expected = {f"{PROJECT}/hooks/h{i:04d}": _auth(i) for i in range(TRIGGERED)}
    template_auth = "Bearer template-7-0123456789abcdefghij"
    with serving(store, "--secrets-key-file", str(keyfile)) as (port, lines):
        api = Api.connect(port)
        try:
            names = _create_hooks(api, sink)
            template = _template(api, 7, template_auth)
            secrets = {
                name: api.hooks.RotateSigningSecret(
                    hooks_pb2.RotateSigningSecretRequest(name=name, overlap=duration_pb2.Duration(seconds=0))
                ).signing_secret
                for name in expected
            }
            assert {sealed.split(":")[2] for _, sealed, _ in _stored(db)} == {old}
            pid = int((db.with_name(db.name + ".lock")).read_text())
            assert pid != os.getpid()
            rotating = subprocess.Popen(
                [str(SERVER), "secrets", "rotate-key", "--store", store, "--secrets-key-file", str(keyfile),
                 "--new-key", "--retire-old", "--batch-size", "16"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
            )  # fmt: skip
            resource = 0
            while rotating.poll() is None or resource < 5:  # deliveries go on during the rotation
                resource += 1
                assert _delivered_signed(api, sink, resource, secrets) == expected
                hook = api.hooks.GetHook(hooks_pb2.GetHookRequest(name=names[resource % HOOKS]))
                assert hook.authorization_header.endswith(_auth(resource % HOOKS)[-4:])
            out, err = rotating.communicate(timeout=60)
            assert rotating.returncode == 0, err
            new = read_keyring(keyfile).primary_id
            assert new != old
            assert out.splitlines() == [
                f"added key {new} first in {keyfile}",
                f"sent SIGHUP to pid {pid}, the server that owns the store; waiting for it to re-encrypt it",
                f"{HOOKS} of {HOOKS} hooks and 1 of 1 templates re-encrypted by the server;"
                f" every secret is now under key {new}",
                f"removed 1 older key(s) from {keyfile}: {old}",
            ]
            assert read_keyring(keyfile).ids == (new,)
            assert {part.split(":")[2] for _, a, s in _stored(db) for part in (a, s)} == {new}
            done = [json.loads(line) for line in lines if "secrets re-encrypted under the newest key" in line]
            assert [(d["key"], d["hooks"], d["templates"]) for d in done] == [(new, HOOKS, 1)]

            # secrets status reads the file beside its running owner.
            status = run("secrets", "status", "--store", store, "--secrets-key-file", str(keyfile))
            assert status.returncode == 0, status.stderr
            assert status.stderr == f"reading the store read-only beside the server that owns it (pid {pid})\n"
            assert status.stdout.splitlines()[:2] == [
                f"{HOOKS} hooks; keyring {new} (the first encrypts)",
                f"  {HOOKS} with every secret under the newest key",
            ]
            assert status.stdout.splitlines()[6] == "  1 with every one under the newest key"

            # The old key is gone from the file: the server delivers and writes under the new one.
            assert _delivered_signed(api, sink, resource + 1, secrets) == expected
            changed = "Bearer changed-after-rotation-0123456789"
            api.hooks.UpdateHook(
                hooks_pb2.UpdateHookRequest(
                    hook=hooks_pb2.Hook(name=names[0], authorization_header=changed),
                    update_mask=field_mask_pb2.FieldMask(paths=["authorization_header"]),
                )
            )
            assert _delivered_signed(api, sink, resource + 2, secrets) == {**expected, names[0]: changed}
            everything = [_auth(i) for i in range(HOOKS)] + [changed, template_auth, *secrets.values()]
            files = [p for p in (db, db.with_name(db.name + "-wal")) if p.exists()]
            assert db.with_name(db.name + "-wal") in files
            assert found_in(files, everything) == []
        finally:
            api.channel.close()
    with serving(store, "--secrets-key-file", str(keyfile)) as (port, _):  # a restart with the new file
        api = Api.connect(port)
        try:
            assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=names[1])).authorization_header.endswith("0123")
            shown = api.templates.GetTemplate(templates_pb2.GetTemplateRequest(name=template))
            assert shown.hooks[0].hook.authorization_header.endswith(template_auth[-4:])
            assert _delivered_signed(api, sink, 1000, secrets) == {**expected, names[0]: changed}
        finally:
            api.channel.close()


_HOLDER = """
import fcntl, os, signal, sys, time
signal.signal(signal.SIGHUP, signal.SIG_IGN)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.pwrite(fd, str(os.getpid()).encode(), 0)
print("held", flush=True)
time.sleep(120)
"""


def test_rotate_key_gives_up_on_an_owner_that_does_not_re_encrypt(tmp_path: Path) -> None:
    """A process holding the file's lock that ignores SIGHUP: rotate-key waits --wait seconds,
    says so, and retires nothing; once the file is free it rotates as before."""
    db = tmp_path / "db.sqlite3"
    store = f"sqlite:///{db}"
    keyfile = tmp_path / "secrets.key"
    old = init_key(keyfile)
    with serving(store, "--secrets-key-file", str(keyfile)) as (port, _):
        api = Api.connect(port)
        api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=PROJECT,
                hook=hooks_pb2.Hook(
                    destination_url="http://127.0.0.1:9/", payload_format="procore.v4", authorization_header=_auth(1)
                ),
            )
        )
        api.channel.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db.with_name(db.name + ".lock"))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        started = time.monotonic()
        result = run(
            "secrets", "rotate-key", "--store", store, "--secrets-key-file", str(keyfile), "--new-key",
            "--retire-old", "--wait", "1.5",
        )  # fmt: skip
        took = time.monotonic() - started
        assert result.returncode == 1, result
        new = read_keyring(keyfile).primary_id
        assert read_keyring(keyfile).ids == (new, old)  # the new key added, the old one kept
        assert result.stdout.splitlines() == [
            f"added key {new} first in {keyfile}",
            f"sent SIGHUP to pid {holder.pid}, the server that owns the store; waiting for it to re-encrypt it",
        ]
        assert result.stderr.splitlines() == [
            f"tidings-server secrets: the server that owns the store (pid {holder.pid}) did not re-encrypt it"
            f" within 1.5 s: 1 hooks or templates are still not under key {new}. Does it read {keyfile} (its"
            " --secrets-key-file)? No key was retired; run rotate-key again (without --new-key)"
        ]
        assert 1.5 <= took < 30
        assert holder.poll() is None  # it ignored the signal and still holds the file
        status = run("secrets", "status", "--store", store, "--secrets-key-file", str(keyfile))
        assert (status.returncode, status.stdout.splitlines()[2]) == (1, "  1 with a secret under an older key")
        # The owner re-encrypts under the keys of its own file: without one, rotate-key says so.
        keys = ",".join(keyfile.read_text().splitlines()[1:])
        refused = run("secrets", "rotate-key", "--store", store, extra_env={"TIDINGS_SECRETS_KEY": keys})
        assert (refused.returncode, refused.stderr) == (
            2,
            f"tidings-server secrets: {store} is owned by a running tidings-server (pid {holder.pid}), which"
            " re-encrypts it itself on SIGHUP, under the newest key of its key file: give --secrets-key-file, the"
            " file it reads\n",
        )
    finally:
        holder.kill()
        holder.wait(10)
    result = run("secrets", "rotate-key", "--store", store, "--secrets-key-file", str(keyfile), "--retire-old")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"1 of 1 hooks and 0 of 0 templates re-encrypted; every secret is now under key {new}",
        f"removed 1 older key(s) from {keyfile}: {old}",
    ]


def test_plaintext_from_before_is_sealed_by_its_running_sqlite_server(tmp_path: Path, sink: Sink) -> None:
    """rotate-key without --new-key beside the server that owns the file: the server seals the
    plaintext rows a server before encryption at rest wrote, and copies the new pages over the
    old ones at once (a checkpoint), so no byte of them is left in the database's files."""
    db = tmp_path / "db.sqlite3"
    store = f"sqlite:///{db}"
    with serving(store, "--plaintext-secrets") as (port, _):
        api = Api.connect(port)
        _create_hooks(api, sink)
        api.channel.close()
    secrets = [_auth(i) for i in range(HOOKS)]
    assert len(found_in([db], secrets)) == HOOKS
    keyfile = tmp_path / "secrets.key"
    kid = init_key(keyfile)
    with serving(store, "--secrets-key-file", str(keyfile)) as (port, lines):
        result = run("secrets", "rotate-key", "--store", store, "--secrets-key-file", str(keyfile))
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[1:] == [
            f"{HOOKS} of {HOOKS} hooks and 0 of 0 templates re-encrypted by the server; every secret is now under"
            f" key {kid}"
        ]
        assert {part.split(":")[2] for _, a, s in _stored(db) for part in (a, s)} == {kid}
        api = Api.connect(port)
        assert _deliver(api, sink, 1) == {f"{PROJECT}/hooks/h{i:04d}": _auth(i) for i in range(TRIGGERED)}
        api.channel.close()
        # The server says it is done once it has copied the re-sealed pages into the file.
        deadline = time.monotonic() + 10
        while not [line for line in lines if "secrets re-encrypted under the newest key" in line]:
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        files = [p for p in (db, db.with_name(db.name + "-wal")) if p.exists()]
        assert found_in(files, secrets) == []  # while it runs, not only once it has stopped
    assert found_in([p for p in (db, db.with_name(db.name + "-wal")) if p.exists()], secrets) == []
