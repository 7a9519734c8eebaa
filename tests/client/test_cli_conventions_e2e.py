"""The command's conventions end to end: output forms anywhere on the line, short names from a
profile, completion from the server, and the messages a new admin reads."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

from tests.client.cli_run import TIDINGS, Cli, assert_one_line_error, in_terminal, screen_lines
from tests.client.test_cli_history_e2e import eventually, make_hook, publish
from tests.http_sink import Sink


def parent_of(project: str) -> str:
    return f"companies/{project.replace('/', '/projects/')}"


def profile_env(cli: Cli, tmp_path: Path, parent: str) -> dict[str, str]:
    config = tmp_path / "config.toml"
    config.write_text(f'default_profile = "p"\n\n[profiles.p]\ntarget = "{cli.target}"\nparent = "{parent}"\n')
    return cli.env(TIDINGS_CONFIG=str(config))


def test_output_forms_go_after_the_command_too(cli: Cli, project: str) -> None:
    hook = make_hook(cli, project, "http://127.0.0.1:9/in")
    after = cli.ok("hooks", "list", "--project", project, "--json").json()
    assert after == cli.ok("--json", "hooks", "list", "--project", project).json()
    assert [h["name"] for h in after] == [hook]
    assert cli.ok("hooks", "list", "--project", project, "-o", "name").out == hook + "\n"
    assert cli.ok("hooks", "get", hook, "-o", "jsonpath=.payload_format").out == "procore.v4\n"
    assert json.loads(cli.ok("hooks", "list", "--project", project, "-o", "jsonl").out)["name"] == hook
    fields = cli.ok("hooks", "list", "--project", project, "--json", "--fields", "name,status").json()
    assert fields == [{"name": hook, "status": "active"}]
    assert cli.ok("hooks", "list", "--project", project, "--fields", "name,status").out == f"{hook}\tactive\n"
    bad = cli("hooks", "list", "--project", project, "-o", "yaml")
    assert bad.code == 2
    assert "table, json, jsonl, tsv, name" in bad.err


def test_piped_tables_are_tab_separated(cli: Cli, project: str) -> None:
    hook = make_hook(cli, project, "http://127.0.0.1:9/in")
    lines = cli.ok("hooks", "list", "--project", project).out.splitlines()
    assert lines[0].split("\t")[:3] == ["NAME", "STATUS", "FORMAT"]
    assert lines[1].split("\t")[:3] == [hook, "active", "procore.v4"]
    assert "  " not in lines[1]  # no padding


def test_project_lists_have_a_hook_column_and_refuse_a_short_hook_filter(
    cli: Cli, project: str, sink: Sink, refusing_url: str
) -> None:
    good = make_hook(cli, project, sink.url(), "RFIs:update")
    bad = make_hook(cli, project, refusing_url, "RFIs:update")
    event = publish(cli, project, "RFIs", 7)
    parent = parent_of(project)
    eventually(lambda: len(cli.ok("--json", "deliveries", "list", parent, "--status", "delivered").json()) == 1)
    eventually(lambda: len(cli.ok("--json", "deliveries", "list", parent, "--status", "failed").json()) == 1)
    lines = cli.ok("deliveries", "list", parent).out.splitlines()
    header = lines[0].split("\t")
    rows = {tuple(line.split("\t")[header.index(c)] for c in ("HOOK", "STATUS")) for line in lines[1:]}
    assert rows == {(good.rsplit("/", 1)[-1], "delivered"), (bad.rsplit("/", 1)[-1], "failed")}
    assert all(line.startswith(event) for line in lines[1:])
    short = cli("deliveries", "list", parent, "--filter", f'hook = "{bad.rsplit("/", 1)[-1]}"')
    assert_one_line_error(short, 2, "INVALID_ARGUMENT", "full name", bad)
    full = cli.ok("--json", "deliveries", "list", parent, "--filter", f'hook = "{bad}"').json()
    assert [d["hook"] for d in full] == [bad]


def test_a_company_list_tells_apart_a_company_hook_and_a_project_hook_of_one_id(
    cli: Cli, sink: Sink, tmp_path: Path
) -> None:
    """Under a company, a company hook and a project hook may share an id and both deliver one
    event: HOOK shows the project's as PROJECT/ID, which is a short name under the company too."""
    company, project = "4246", "4246/17"
    for scope in (["--company", company], ["--project", project]):
        cli.ok("hooks", "create", *scope, "--id", "erp-sync", "--url", sink.url(), "--format", "procore.v4",
               "--event", "RFIs:update")  # fmt: skip
    event = publish(cli, project, "RFIs", 5)
    parent = "companies/4246"
    eventually(lambda: len(cli.ok("--json", "deliveries", "list", parent, "--status", "delivered").json()) == 2)
    lines = cli.ok("deliveries", "list", parent).out.splitlines()
    header = lines[0].split("\t")
    assert sorted(line.split("\t")[header.index("HOOK")] for line in lines[1:]) == ["17/erp-sync", "erp-sync"]
    for label, hook in (
        ("17/erp-sync", f"{parent}/projects/17/hooks/erp-sync"),
        ("erp-sync", f"{parent}/hooks/erp-sync"),
    ):
        shown = cli.ok("--json", "deliveries", "show", f"{label}/{event}", "--company", company).json()
        assert shown["name"] == f"{hook}/deliveries/{event}"
    assert (
        cli.ok("hooks", "get", "17/erp-sync", "--company", company, "-o", "name").out
        == f"{parent}/projects/17/hooks/erp-sync\n"
    )
    # Completion under the company offers the deliveries by the same short names.
    words = {"_TIDINGS_COMPLETE": "bash_complete", "COMP_WORDS": "tidings deliveries show ", "COMP_CWORD": "3"}
    offered = cli(env={**profile_env(cli, tmp_path, parent), **words}).out.split()
    assert {f"plain,17/erp-sync/deliveries/{event}", f"plain,erp-sync/deliveries/{event}"} <= set(offered), offered


def test_short_names_under_the_profiles_parent(cli: Cli, project: str, tmp_path: Path, sink: Sink) -> None:
    parent = parent_of(project)
    hook = make_hook(cli, project, sink.url(), "RFIs:update")
    hook_id = hook.rsplit("/", 1)[-1]
    env = profile_env(cli, tmp_path, parent)
    shown = cli("--json", "hooks", "show", hook_id, env=env)
    assert shown.code == 0, shown.err
    assert shown.json()["hook"]["name"] == hook
    event = publish(cli, project, "RFIs", 3)
    eventually(lambda: cli.ok("--json", "deliveries", "list", hook, "--status", "delivered").json())
    listed = cli("--json", "deliveries", "list", hook_id, env=env).json()
    assert [d["name"] for d in listed] == [f"{hook}/deliveries/{event}"]
    one = cli("--json", "deliveries", "show", f"{hook_id}/deliveries/{event}", env=env)
    assert one.code == 0, one.err
    assert one.json()["name"] == f"{hook}/deliveries/{event}"
    paused = cli("hooks", "pause", hook_id, env=env)
    assert paused.out.strip() == f"paused {hook}: deliveries wait until `tidings hooks resume`"
    resumed = cli("hooks", "resume", hook_id, env=env)
    assert resumed.out.strip() == f"resumed {hook}: deliveries go out again"
    # Without a parent to be relative to, a short id says what is expected.
    alone = cli("hooks", "show", hook_id)
    assert alone.code == 2
    assert "is a short hook id: give the full name" in alone.err


def test_short_names_under_project_or_company_flags(cli: Cli, project: str, sink: Sink) -> None:
    """No profile: ``--project``/``--company`` on the command line set what short ids are
    relative to, after the command as before it, for hooks, events and deliveries alike."""
    parent = parent_of(project)
    created = cli.ok("--json", "hooks", "create", "--project", project, "--id", "erp-sync", "--url", sink.url(),
                     "--format", "procore.v4", "--event", "RFIs:update")  # fmt: skip
    hook = created.json()["hook"]["name"]
    assert hook == f"{parent}/hooks/erp-sync"
    shown = cli("--json", "hooks", "show", "erp-sync", "--project", project)
    assert shown.code == 0, shown.err
    assert shown.json()["hook"]["name"] == hook
    assert cli.ok("hooks", "get", "--project", project, "erp-sync", "-o", "name").out == hook + "\n"
    assert [
        t["resource_name"] for t in cli.ok("--json", "events", "list", "erp-sync", "--project", project).json()
    ] == ["RFIs"]
    event = publish(cli, project, "RFIs", 11)
    eventually(lambda: cli.ok("--json", "deliveries", "list", hook, "--status", "delivered").json())
    listed = cli.ok("--json", "deliveries", "list", "erp-sync", "--project", project).json()
    assert [d["name"] for d in listed] == [f"{hook}/deliveries/{event}"]
    under_project = cli.ok("--json", "deliveries", "list", "--project", project).json()  # no PARENT: the project
    assert [d["name"] for d in under_project] == [f"{hook}/deliveries/{event}"]
    one = cli("--json", "deliveries", "show", f"erp-sync/{event}", "--project", project)
    assert one.code == 0, one.err
    assert one.json()["name"] == f"{hook}/deliveries/{event}"
    # A company hook, by its id under --company.
    company = project.split("/", 1)[0]
    company_hook = cli.ok("--json", "hooks", "create", "--company", company, "--id", f"co-{project.split('/')[1]}",
                          "--url", sink.url(), "--format", "procore.v4").json()["hook"]["name"]  # fmt: skip
    paused = cli("hooks", "pause", company_hook.rsplit("/", 1)[-1], "--company", company)
    assert paused.out.strip() == f"paused {company_hook}: deliveries wait until `tidings hooks resume`"
    both = cli("hooks", "show", "erp-sync", "--project", project, "--company", company)
    assert both.code == 2
    assert "give --project or --company, not both" in both.err


def test_completion_offers_hook_names_and_delivery_ids(cli: Cli, project: str, tmp_path: Path, sink: Sink) -> None:
    hook = make_hook(cli, project, sink.url(), "RFIs:update")
    hook_id = hook.rsplit("/", 1)[-1]
    env = profile_env(cli, tmp_path, parent_of(project))
    words = {"_TIDINGS_COMPLETE": "bash_complete", "COMP_WORDS": "tidings hooks show ", "COMP_CWORD": "3"}
    offered = cli(env={**env, **words}).out
    assert hook_id in offered
    event = publish(cli, project, "RFIs", 4)
    eventually(lambda: cli.ok("--json", "deliveries", "list", hook).json())
    words = {
        "_TIDINGS_COMPLETE": "bash_complete",
        "COMP_WORDS": f"tidings deliveries show {hook_id}/",
        "COMP_CWORD": "3",
    }
    assert f"{hook_id}/deliveries/{event}" in cli(env={**env, **words}).out
    # A server that is not there completes nothing, quickly, and without an error.
    dead = {**env, "TIDINGS_TARGET": "127.0.0.1:1", **words}
    started = time.monotonic()
    result = cli(env=dead)
    assert (result.code, result.out.strip()) == (0, "")
    assert time.monotonic() - started < 10


def test_list_all_streams_when_piped(cli: Cli, project: str, sink: Sink) -> None:
    hook = make_hook(cli, project, sink.url(), "RFIs:update")
    ids = [publish(cli, project, "RFIs", n) for n in (1, 2, 3)]
    eventually(lambda: len(cli.ok("--json", "deliveries", "list", hook, "--status", "delivered").json()) == 3)
    everything = cli.ok("--json", "deliveries", "list", hook, "--all").json()
    assert [d["event"]["id"] for d in everything] == list(reversed(ids))
    lines = cli.ok("deliveries", "list", hook, "--all", "-o", "jsonl").out.splitlines()
    assert [json.loads(line)["event"]["id"] for line in lines] == list(reversed(ids))
    rows = cli.ok("deliveries", "list", hook, "--all").out.splitlines()
    assert [r.split("\t")[0] for r in rows[1:]] == list(reversed(ids))
    assert cli.ok("--json", "deliveries", "list", hook, "--all", "--status", "failed").json() == []


def test_list_all_on_a_terminal_counts_while_it_fetches(cli: Cli, project: str, sink: Sink) -> None:
    """On a terminal, `--all` draws a running count while the pages arrive (on stderr, gone
    once the table is drawn), then the table and the total."""
    hook = make_hook(cli, project, sink.url(), "RFIs:update")
    ids = [publish(cli, project, "RFIs", n) for n in (1, 2, 3)]
    eventually(lambda: len(cli.ok("--json", "deliveries", "list", hook, "--status", "delivered").json()) == 3)
    code, text = in_terminal(cli, "deliveries", "list", hook, "--all", columns=120, lines=40)
    assert code == 0, text
    fetching, header, drawn = text.partition("EVENT ID")
    assert header, text
    assert re.search(r"\b3 deliveries", "".join(screen_lines(fetching))), fetching
    lines = screen_lines(header + drawn)
    assert [line.split()[0] for line in lines if line.startswith(tuple(ids))] == list(reversed(ids))
    assert lines[-1] == "3 deliveries"


def test_messages(cli: Cli, project: str) -> None:
    base = ["hooks", "create", "--project", project, "--format", "procore.v4"]
    assert_one_line_error(cli(*base, "--url", "not-a-url"), 2, "absolute http or https URL")
    assert "must be an absolute https" not in cli(*base, "--url", "not-a-url").err
    unknown = cli(*base, "--url", "http://127.0.0.1:9/in", "--event", "RFI:create")
    assert_one_line_error(unknown, 2, "'RFIs'", "tidings catalog resources")
    assert "ListResources" not in unknown.err
    assert cli.ok("--json", "hooks", "list", "--project", project).json() == []  # nothing left behind
    hook = make_hook(cli, project, "http://127.0.0.1:9/in")
    assert_one_line_error(cli("hooks", "rotate-secret", hook, "--overlap", "30d", "--yes"), 2, "30 days", "7 days")
    gone = cli("hooks", "list", "--project", project, env=cli.env(TIDINGS_TARGET="127.0.0.1:1"))
    assert_one_line_error(gone, 5, "127.0.0.1:1", "--target", "TIDINGS_TARGET")


def run_on_terminal(cli: Cli, args: list[str], answer: bytes | None) -> tuple[int, str]:
    """The command on a terminal; ``answer`` is typed at its question, None interrupts it (SIGINT,
    what Ctrl-C sends)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([str(TIDINGS), *args], stdin=terminal, stdout=terminal, stderr=terminal, env=cli.env())
    os.close(terminal)
    screen = b""
    deadline = time.monotonic() + 30
    interrupted = 0.0
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if interrupted and proc.poll() is None and time.monotonic() - interrupted > 3:
                # A second Ctrl-C, as a person gives one that seemed lost on a busy machine.
                proc.send_signal(signal.SIGINT)
                interrupted = time.monotonic()
            if not ready:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
            if b"[y/N]" in screen:
                if answer is None:
                    proc.send_signal(signal.SIGINT)
                    interrupted = time.monotonic()
                else:
                    os.write(controller, answer)
                screen = screen.replace(b"[y/N]", b"[asked]")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    return proc.wait(10), screen.decode("utf-8", "replace")


def test_declining_and_interrupting_a_prompt(cli: Cli, project: str) -> None:
    hook = make_hook(cli, project, "http://127.0.0.1:9/in")
    code, screen = run_on_terminal(cli, ["hooks", "delete", hook], b"n\n")
    assert (code, "nothing changed" in screen, "error" in screen) == (1, True, False)
    code, screen = run_on_terminal(cli, ["hooks", "delete", hook], None)
    assert code == 130
    assert "error" not in screen
    assert "Traceback" not in screen
    assert cli.ok("--json", "hooks", "get", hook).json()["name"] == hook  # still there
