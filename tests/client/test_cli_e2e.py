"""The ``tidings`` command end to end: a real CLI process against a real ``tidings-server`` process.

Covers hooks, events (triggers), the catalog and publishing. The delivery-history commands are
in test_cli_history_e2e.py, signing secrets in test_cli_signing_e2e.py; test_cli_scripted.py
covers what a real server cannot be made to do (dropped watch streams, refusals on cue).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.client.cli_run import Cli, assert_one_line_error
from tests.http_sink import Sink


def test_create_review_and_remove_events(cli: Cli, project: str) -> None:
    created = cli.ok(
        "--json",
        "hooks",
        "create",
        "--project",
        project,
        "--url",
        "http://127.0.0.1:9/in",
        "--auth-header",
        "Bearer 0123456789abcdef4e94b",
        "--format",
        "procore.v4",
        "--name",
        "Procore sync",
        "--id",
        "procore-sync",
        "--event",
        "RFIs:create",
        "--event",
        "Submittals:*",
    ).json()
    hook = created["hook"]
    name = f"companies/{project.replace('/', '/projects/')}/hooks/procore-sync"
    assert hook["name"] == name
    assert hook["authorization_header"] == "••••••e94b"
    assert "0123456789" not in json.dumps(created)
    assert {(t["resource_name"], t["event_type"]) for t in created["triggers"]} == {
        ("RFIs", "create"),
        ("Submittals", "create"),
        ("Submittals", "update"),
        ("Submittals", "delete"),
    }
    # JSON round trips: what create printed is what get and list print, but for the signing
    # secret, which only create (and rotate-secret) show.
    assert hook.pop("signing_secret").startswith("whsec_")
    assert cli.ok("--json", "hooks", "get", name).json() == {**hook, "signing_secret": ""}
    assert cli.ok("--json", "hooks", "list", "--project", project).json() == [{**hook, "signing_secret": ""}]
    assert cli.ok("--json", "events", "list", name).json() == sorted(created["triggers"], key=lambda t: t["name"])

    table = cli.ok("events", "list", name).out
    assert "Submittals" in table
    assert "submittals.update" in table

    removed = cli.ok("--json", "events", "remove", name, "Submittals:delete", "rfis.create").json()
    assert {t["name"].rsplit("/", 1)[1] for t in removed} == {"submittals.delete", "rfis.create"}
    left = cli.ok("--json", "events", "list", name).json()
    assert [t["name"].rsplit("/", 1)[1] for t in left] == ["submittals.create", "submittals.update"]

    missing = cli("events", "remove", name, "RFIs:create")
    assert_one_line_error(missing, 3, "does not send RFIs:create")
    assert cli.ok("events", "remove", name, "RFIs:create", "--missing-ok").code == 0

    added = cli.ok("--json", "events", "add", name, "RFIs:update", "RFIs:delete").json()
    assert [t["event_type"] for t in added] == ["update", "delete"]


def test_update_pause_resume_delete(cli: Cli, project: str) -> None:
    hook = cli.ok(
        "--json", "hooks", "create", "--project", project, "--url", "http://127.0.0.1:9/a", "--format", "procore.v3"
    ).json()["hook"]
    name = hook["name"]
    updated = cli.ok(
        "--json",
        "hooks",
        "update",
        name,
        "--url",
        "http://127.0.0.1:9/b",
        "--retry-window",
        "2h",
        "--max-concurrency",
        "2",
    ).json()
    assert updated["destination_url"] == "http://127.0.0.1:9/b"
    assert updated["retry_policy"]["retry_window"] == 7200.0
    assert updated["retry_policy"]["timeout"] == hook["retry_policy"]["timeout"]  # the rest of the policy is kept
    assert updated["max_concurrency"] == 2
    assert cli.ok("--json", "hooks", "pause", name).json()["status"] == "paused"
    assert [
        h["name"] for h in cli.ok("--json", "hooks", "list", "--project", project, "--status", "paused").json()
    ] == [name]
    assert "paused" in cli.ok("hooks", "get", name).out
    assert cli.ok("--json", "hooks", "resume", name).json()["status"] == "active"

    refused = cli("hooks", "delete", name)  # no terminal to ask on
    assert refused.code == 2
    assert "--yes" in refused.err
    assert cli.ok("--json", "hooks", "delete", name, "--yes").json() == {"deleted": name}
    assert_one_line_error(cli("hooks", "get", name), 3, "NOT_FOUND", name)
    assert_one_line_error(cli("hooks", "delete", name, "--yes"), 3, "NOT_FOUND")


def test_errors_are_one_line_with_exit_codes(cli: Cli, project: str) -> None:
    base = ["hooks", "create", "--project", project, "--format", "procore.v4"]
    assert_one_line_error(cli(*base, "--url", "ftp://127.0.0.1/in"), 2, "INVALID_ARGUMENT", "hook.destination_url")
    cli.ok(*base, "--url", "http://127.0.0.1:9/in", "--id", "once")
    assert_one_line_error(cli(*base, "--url", "http://127.0.0.1:9/in", "--id", "once"), 4, "ALREADY_EXISTS")
    # A refused event leaves no hook behind.
    bad = cli(*base, "--url", "http://127.0.0.1:9/in", "--id", "bad-event", "--event", "RFIs:explode")
    assert_one_line_error(bad, 2, "INVALID_ARGUMENT", "explode")
    assert cli("hooks", "get", f"companies/{project.replace('/', '/projects/')}/hooks/bad-event").code == 3

    usage = cli("hooks", "create", "--url", "http://127.0.0.1:9/in", "--format", "procore.v4")
    assert usage.code == 2
    assert "exactly one of --project" in usage.err
    assert cli("hooks", "create", "--project", "8", "--url", "u", "--format", "f").code == 2
    assert "not a duration" in cli("hooks", "update", "x", "--retry-window", "soon").err
    assert cli("hooks", "update", f"companies/{project}/hooks/x").code == 2  # nothing to change
    assert cli("nonsense").code == 2

    unreachable = cli("--target", "127.0.0.1:1", "--timeout", "2", "hooks", "list", "--project", project)
    assert_one_line_error(unreachable, 5, "UNAVAILABLE")


def test_catalog(cli: Cli) -> None:
    resources = cli.ok("--json", "catalog", "resources", "--scope", "project", "--search", "rfi").json()
    assert [r["resource_name"] for r in resources] == ["RFI Replies", "RFIs"]
    assert all(r["scope"] == "project" for r in resources)
    assert "RFIs" in cli.ok("catalog", "resources", "--search", "RFI").out
    company = cli.ok("--json", "catalog", "resources", "--scope", "company", "--format", "procore.v4").json()
    assert company
    assert all(r["scope"] == "company" for r in company)
    formats = cli.ok("--json", "catalog", "formats").json()
    assert {"procore.v2", "procore.v3", "procore.v4"} <= {f["name"] for f in formats}
    assert "procore.v4" in cli.ok("catalog", "formats").out
    assert_one_line_error(cli("catalog", "resources", "--format", "nope.v1"), 2, "INVALID_ARGUMENT")


def test_publish_reaches_the_receiver(cli: Cli, project: str, sink: Sink) -> None:
    hook = cli.ok(
        "--json",
        "hooks",
        "create",
        "--project",
        project,
        "--url",
        sink.url(),
        "--format",
        "procore.v4",
        "--event",
        "RFIs:update",
    ).json()["hook"]
    assert hook["status"] == "active"
    event = ["--project", project, "--resource", "RFIs", "--resource-id", "54321", "--event-type", "update"]
    [published] = cli.ok("--json", "publish", *event, "--user-id", "5447", "--idempotency-key", "rfi-54321-1").json()
    assert published["deliveries"] == 1
    assert not published["duplicate"]
    assert sink.wait_until(lambda: any(b"54321" in body for _, body in sink.received), 10)
    [again] = cli.ok("--json", "publish", *event, "--user-id", "5447", "--idempotency-key", "rfi-54321-1").json()
    assert again["duplicate"]
    assert again["event_id"] == published["event_id"]

    company_id, project_id = project.split("/")
    lines = [
        json.dumps(
            {
                "company_id": int(company_id),
                "project_id": int(project_id),
                "resource_name": "RFIs",
                "resource_id": 60000 + i,
                "event_type": "update",
                "user_id": 5447,
                "timestamp": "2026-11-20T09:30:00Z",
            }
        )
        for i in range(3)
    ]
    results = cli.ok("--json", "publish", "--file", "-", input="\n".join(lines) + "\n").json()
    assert [r["deliveries"] for r in results] == [1, 1, 1]
    assert len({r["idempotency_key"] for r in results}) == 3
    # The resource ids, not the project's (6000 is a project number too: the first test of a run gets it).
    assert sink.wait_until(lambda: sum(b'"resource_id":"6000' in body for _, body in sink.received) == 3, 10)
    bad = cli("publish", "--file", "-", input='{"company_id": 8}\n')
    assert bad.code == 2
    assert "line 1: missing field" in bad.err


def test_profiles(cli: Cli, project: str, tmp_path: Path) -> None:
    hook = cli.ok(
        "--json", "hooks", "create", "--project", project, "--url", "http://127.0.0.1:9/in", "--format", "procore.v4"
    ).json()["hook"]
    hook["signing_secret"] = ""  # shown by create only
    parent = f"companies/{project.replace('/', '/projects/')}"
    config = tmp_path / "config.toml"
    config.write_text(
        f'default_profile = "dead"\n\n[profiles.dead]\ntarget = "127.0.0.1:1"\ntimeout = 2\n\n'
        f'[profiles.local]\ntarget = "{cli.target}"\nparent = "{parent}"\n'
    )
    env = cli.env(TIDINGS_CONFIG=str(config))
    env.pop("TIDINGS_TARGET")
    # The profile gives the target and the parent `hooks list` needs.
    listed = cli("--json", "--profile", "local", "hooks", "list", env=env)
    assert listed.code == 0, listed.err
    assert [h["name"] for h in listed.json()] == [hook["name"]]
    # The default profile is used without --profile; --target on the command line wins over it.
    assert cli("hooks", "list", "--project", project, env=env).code == 5
    assert cli("--target", cli.target, "--json", "hooks", "list", "--project", project, env=env).json() == [hook]
    # So does the environment.
    assert cli("--json", "hooks", "list", "--project", project, env={**env, "TIDINGS_TARGET": cli.target}).code == 0
    missing = cli("--profile", "nope", "hooks", "list", env=env)
    assert missing.code == 2
    assert "no profile 'nope'" in missing.err
    config.write_text('[profiles.x]\ntargte = "127.0.0.1:1"\n')
    typo = cli("--profile", "x", "hooks", "list", env=env)
    assert typo.code == 2
    assert "unknown setting 'targte'" in typo.err
    assert cli("--config", str(tmp_path / "absent.toml"), "hooks", "list").code == 2


def test_shell_completion(cli: Cli) -> None:
    script = cli.ok("completion", "bash").out
    assert "_TIDINGS_COMPLETE" in script
    env = cli.env(_TIDINGS_COMPLETE="bash_complete", COMP_WORDS="tidings hooks pa", COMP_CWORD="2")
    assert "pause" in cli(env=env).out
    env = cli.env(_TIDINGS_COMPLETE="bash_complete", COMP_WORDS="tidings deliveries list --status fa", COMP_CWORD="4")
    assert "failed" in cli(env=env).out
