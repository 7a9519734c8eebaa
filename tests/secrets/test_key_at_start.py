"""Which key a server starts with, and when it refuses to start: never silently in plaintext."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

from tests.harness import Api
from tests.secrets.servers import run, serving
from tidings.v1 import hooks_pb2, templates_pb2
from tidings_server.domain.sealing import encode_key, key_id, new_key
from tidings_server.keys import ENV_VAR, init_key

NO_KEY = (
    "tidings-server: --secrets-key-file: no key to encrypt the secrets this store keeps; create one with"
    " `tidings-server secrets init-key PATH` and pass --secrets-key-file PATH (or set TIDINGS_SECRETS_KEY),"
    " or pass --plaintext-secrets to keep them unencrypted (development only)"
)


def _serve(*args: str, extra_env: dict[str, str] | None = None) -> tuple[int, str]:
    result = run("serve", "--listen", "127.0.0.1:0", *args, extra_env=extra_env)
    return result.returncode, result.stderr.strip()


def _create_hook(port: int, auth: str = "Bearer 0123456789abcdef-secret") -> hooks_pb2.Hook:
    api = Api.connect(port)
    try:
        return api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent="companies/1/projects/2",
                hook=hooks_pb2.Hook(
                    destination_url="http://127.0.0.1:9/in", payload_format="procore.v4", authorization_header=auth
                ),
            )
        )
    finally:
        api.channel.close()


def _stored_authorization(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [row[0] for row in conn.execute("SELECT authorization_header FROM hooks ORDER BY name")]


def test_a_persistent_store_without_a_key_is_refused(tmp_path: Path) -> None:
    assert _serve("--store", f"sqlite:///{tmp_path / 'db.sqlite3'}") == (2, NO_KEY)


def test_memory_needs_no_key_and_plaintext_mode_must_be_asked_for(tmp_path: Path) -> None:
    with serving("memory:") as (port, _):
        assert _create_hook(port).authorization_header.endswith("cret")
    db = tmp_path / "db.sqlite3"
    with serving(f"sqlite:///{db}", "--plaintext-secrets") as (port, lines):
        _create_hook(port)
    warnings = [json.loads(line) for line in lines if line.startswith("{") and '"warning"' in line]
    assert any("stored unencrypted (--plaintext-secrets)" in w["message"] for w in warnings)
    assert _stored_authorization(db) == ["Bearer 0123456789abcdef-secret"]


def test_the_key_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    keyfile = tmp_path / "secrets.key"
    kid = init_key(keyfile)
    db = tmp_path / "db.sqlite3"
    with serving(f"sqlite:///{db}", "--secrets-key-file", str(keyfile)) as (port, _):
        _create_hook(port)
    [stored] = _stored_authorization(db)
    assert stored.startswith(f"§sealed:v1:{kid}:")

    key = new_key()
    db2 = tmp_path / "db2.sqlite3"
    with serving(f"sqlite:///{db2}", extra_env={ENV_VAR: encode_key(key)}) as (port, _):
        _create_hook(port)
    assert _stored_authorization(db2)[0].startswith(f"§sealed:v1:{key_id(key)}:")


def test_a_keyring_that_does_not_open_the_store_is_refused_naming_the_hook(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    first, second = tmp_path / "first.key", tmp_path / "second.key"
    kid = init_key(first)
    init_key(second)
    with serving(f"sqlite:///{db}", "--secrets-key-file", str(first)) as (port, _):
        name = _create_hook(port).name
    code, err = _serve("--store", f"sqlite:///{db}", "--secrets-key-file", str(second))
    assert code == 2
    assert err == (
        "tidings-server: --secrets-key-file: stored secrets do not open with this keyring: hook"
        f" {name}, authorization_header: sealed under key {kid}, which the keyring does not hold"
    )
    code, err = _serve("--store", f"sqlite:///{db}", "--plaintext-secrets")
    assert code == 2
    assert "do not open with this keyring" in err


def test_a_keyring_that_does_not_open_a_template_is_refused_naming_it(tmp_path: Path) -> None:
    """A template's hook definitions hold Authorization headers: a keyring that cannot open
    them would fail every read and application of the template, so it fails the start instead."""
    db = tmp_path / "db.sqlite3"
    first, second = tmp_path / "first.key", tmp_path / "second.key"
    kid = init_key(first)
    init_key(second)
    with serving(f"sqlite:///{db}", "--secrets-key-file", str(first)) as (port, _):
        api = Api.connect(port)
        try:
            template = api.templates.CreateTemplate(
                templates_pb2.CreateTemplateRequest(
                    parent="companies/1",
                    template_id="standard",
                    template=templates_pb2.Template(
                        hooks=[
                            templates_pb2.HookDefinition(
                                hook_id="erp",
                                hook=hooks_pb2.Hook(
                                    destination_url="http://127.0.0.1:9/in",
                                    payload_format="procore.v4",
                                    authorization_header="Bearer 0123456789abcdef-secret",
                                ),
                            )
                        ]
                    ),
                )
            )
        finally:
            api.channel.close()
    code, err = _serve("--store", f"sqlite:///{db}", "--secrets-key-file", str(second))
    assert code == 2
    assert err == (
        "tidings-server: --secrets-key-file: stored secrets do not open with this keyring: template"
        f" {template.name}, hook erp: sealed under key {kid}, which the keyring does not hold"
    )


def test_bad_key_options_are_refused_in_one_line(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    keyfile = tmp_path / "secrets.key"
    missing = tmp_path / "missing.key"
    code, err = _serve("--store", store, "--secrets-key-file", str(missing))
    assert (code, err.startswith("tidings-server: --secrets-key-file: [Errno 2] No such file")) == (2, True)
    keyfile.write_text("not a key\n")
    assert _serve("--store", store, "--secrets-key-file", str(keyfile)) == (
        2,
        f"tidings-server: --secrets-key-file: {keyfile}: key 1 is not base64",
    )
    keyfile.write_text(base64.b64encode(b"too short").decode())
    code, err = _serve("--store", store, "--secrets-key-file", str(keyfile))
    assert (code, "key 1 is 9 bytes" in err) == (2, True)
    assert base64.b64encode(b"too short").decode() not in err  # a key is never quoted
    init_key(good := tmp_path / "good.key")
    assert _serve("--store", store, "--secrets-key-file", str(good), extra_env={ENV_VAR: encode_key(new_key())}) == (
        2,
        "tidings-server: --secrets-key-file: TIDINGS_SECRETS_KEY is set too; give the keys one way",
    )
    assert _serve("--store", store, "--secrets-key-file", str(good), "--plaintext-secrets") == (
        2,
        "tidings-server: --plaintext-secrets: a key is given too; give one or the other",
    )
    assert _serve("--store", store, extra_env={ENV_VAR: "bad"}) == (
        2,
        "tidings-server: --secrets-key-file: TIDINGS_SECRETS_KEY: key 1 is not base64",
    )
