"""``tidings-server secrets rotate-key``: a store re-encrypted under a new key while its server
runs, and plaintext from before encryption at rest sealed for good."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from google.protobuf import field_mask_pb2

from tests.harness import Api
from tests.http_sink import Sink, running_sink
from tests.secrets.servers import SERVER, env, run, serving
from tests.secrets.spelling import found_in
from tidings.v1 import events_pb2, hooks_pb2, templates_pb2
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
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
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


def _deliver(api: Api, sink: Sink, resource_id: int) -> dict[str, str | None]:
    """Publish an RFI update; the Authorization header each triggered hook's endpoint got."""
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

    def arrived() -> list[str | None]:
        return [r.header("Tidings-Hook") for r in sink.requests if r.header("Tidings-Delivery-Id") == event_id]

    assert sink.wait_until(lambda: len(arrived()) == TRIGGERED, 15)
    with sink.arrived:
        return {
            str(r.header("Tidings-Hook")): r.header("Authorization")
            for r in sink.requests
            if r.header("Tidings-Delivery-Id") == event_id
        }


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
    # A SQLite store has one process at a time: rotate-key runs with its server stopped.
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
