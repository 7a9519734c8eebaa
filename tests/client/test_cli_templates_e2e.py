"""``tidings templates``: create, list, show, update, apply (twice) and delete a project template
from a real CLI process against a real server process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.client.cli_run import Cli, assert_one_line_error

HOOKS = [
    {
        "hook_id": "erp",
        "url": "http://127.0.0.1:9/erp",
        "format": "procore.v4",
        "events": ["RFIs:*"],
        "name": "ERP",
        "auth_header": "Bearer 0123456789abcdef4e94b",
        "ordering": "per-resource",
    },
    {"hook_id": "docs", "url": "http://127.0.0.1:9/docs", "format": "procore.v4", "events": ["Submittals:create"]},
]


def test_a_template_made_shown_applied_twice_edited_and_deleted(cli: Cli, tmp_path: Path) -> None:
    hooks_file = tmp_path / "hooks.json"
    hooks_file.write_text(json.dumps(HOOKS))
    made = cli.ok(
        "--json", "templates", "create", "--company", "91", "--id", "standard", "--name", "Standard",
        "--hooks-file", str(hooks_file),
    ).json()  # fmt: skip
    name = "companies/91/templates/standard"
    assert (made["name"], made["revision"]) == (name, 1)
    erp = made["hooks"][0]
    assert erp["authorization_header"] == "••••••e94b"
    assert sorted(erp["events"]) == [["RFIs", "create"], ["RFIs", "delete"], ["RFIs", "update"]]
    assert "0123456789" not in json.dumps(made)
    assert [t["name"] for t in cli.ok("--json", "templates", "list", "--company", "91").json()] == [name]
    shown = cli.ok("templates", "show", name).out
    assert "erp" in shown
    assert "RFIs:create" in shown

    applied = cli.ok("--json", "templates", "apply", name, "--project", "91/7").json()
    assert [h["name"] for h in applied["created"]] == [
        "companies/91/projects/7/hooks/erp",
        "companies/91/projects/7/hooks/docs",
    ]
    assert all(h["signing_secret"].startswith("whsec_") for h in applied["created"])
    again = cli.ok("templates", "apply", name, "--project", "91/7")
    assert "applied to companies/91/projects/7 already: nothing was created" in again.out
    hook = cli.ok("hooks", "get", "companies/91/projects/7/hooks/erp").out
    assert f"{name} (revision 1)" in hook

    hooks_file.write_text(json.dumps(HOOKS[1:]))
    edited = cli.ok("--json", "templates", "update", name, "--hooks-file", str(hooks_file)).json()
    assert (edited["revision"], len(edited["hooks"])) == (2, 1)
    assert len(cli.ok("--json", "hooks", "list", "--project", "91/7").json()) == 2  # unchanged

    cli.ok("templates", "delete", name, "--yes")
    assert_one_line_error(cli("templates", "show", name), 3, "does not exist")


def test_a_bad_hooks_file_is_refused_before_anything_is_sent(cli: Cli, tmp_path: Path) -> None:
    hooks_file = tmp_path / "hooks.json"
    hooks_file.write_text(json.dumps([{"hook_id": "a", "url": "http://127.0.0.1:9/", "format": "procore.v4"}]))
    result = cli("templates", "create", "--company", "92", "--id", "t", "--hooks-file", str(hooks_file))
    assert result.code == 2
    assert "hooks[0]: 'events' is required" in result.err
    assert cli.ok("--json", "templates", "list", "--company", "92").json() == []
