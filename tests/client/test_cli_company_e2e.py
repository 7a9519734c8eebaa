"""``tidings hooks create --company … --event 'RFIs:*' [--projects …]``: a company hook on a
project-level resource, from a real CLI process against a real server process."""

from __future__ import annotations

from tests.client.cli_run import Cli, assert_one_line_error

URL = "http://127.0.0.1:9/in"


def test_a_company_hook_selects_every_rfi_event_of_the_projects_it_lists(cli: Cli) -> None:
    created = cli.ok(
        "--json", "hooks", "create", "--company", "81", "--url", URL, "--format", "procore.v4",
        "--id", "rfis", "--event", "RFIs:*", "--projects", "3,1",
    ).json()  # fmt: skip
    hook = created["hook"]
    assert hook["name"] == "companies/81/hooks/rfis"
    assert hook["projects"] == [1, 3]
    assert {(t["resource_name"], t["event_type"]) for t in created["triggers"]} == {
        ("RFIs", "create"),
        ("RFIs", "update"),
        ("RFIs", "delete"),
    }
    shown = cli.ok("hooks", "get", hook["name"]).out
    assert "projects" in shown
    assert "1, 3" in shown
    widened = cli.ok("--json", "hooks", "update", hook["name"], "--all-projects").json()
    assert widened["projects"] == []
    assert "every project of the company" in cli.ok("hooks", "get", hook["name"]).out
    assert cli.ok("--json", "hooks", "update", hook["name"], "--projects", "7").json()["projects"] == [7]


def test_a_company_hook_may_mix_company_and_project_resources(cli: Cli) -> None:
    created = cli.ok(
        "--json", "hooks", "create", "--company", "82", "--url", URL, "--format", "procore.v4",
        "--event", "Projects:create", "--event", "Submittals:update",
    ).json()  # fmt: skip
    assert {(t["resource_name"], t["event_type"]) for t in created["triggers"]} == {
        ("Projects", "create"),
        ("Submittals", "update"),
    }


def test_project_lists_belong_to_company_hooks_only(cli: Cli) -> None:
    result = cli(
        "hooks", "create", "--project", "83/1", "--url", URL, "--format", "procore.v4", "--projects", "1",
    )  # fmt: skip
    assert (result.code, "Traceback" in result.err) == (2, False)
    assert "Error: --projects is for company hooks (--company)" in result.err
    result = cli("hooks", "create", "--company", "83", "--url", URL, "--format", "procore.v4", "--projects", "1,x")
    assert result.code == 2
    assert "'x' is not a project id" in result.err
    assert cli.ok("--json", "hooks", "list", "--company", "83").json() == []


def test_an_unknown_resource_names_what_company_hooks_can_select(cli: Cli) -> None:
    result = cli(
        "hooks", "create", "--company", "84", "--url", URL, "--format", "procore.v4", "--event", "RFI:*",
    )  # fmt: skip
    assert_one_line_error(result, 2, "'RFI' is not a resource company hooks can select", "'RFIs'")


def test_the_catalog_shows_which_hooks_may_select_a_resource(cli: Cli) -> None:
    table = cli.ok("catalog", "resources", "--scope", "project", "--search", "RFI Replies").out
    assert "SELECTABLE BY" in table
    assert "company hooks, project hooks" in table


def test_a_company_hooks_overview_narrowed_to_one_project_beside_short_names(cli: Cli) -> None:
    hook = cli.ok(
        "--json", "hooks", "create", "--company", "86", "--id", "rfis", "--url", URL, "--format", "procore.v4",
        "--event", "RFIs:update",
    ).json()["hook"]  # fmt: skip
    narrowed = cli.ok("--json", "hooks", "show", hook["name"], "--in-project", "3").json()
    assert narrowed["project_id"] == 3
    # --company is the parent short ids are relative to; --in-project still narrows.
    short = cli.ok("--json", "hooks", "show", "rfis", "--company", "86", "--in-project", "4").json()
    assert (short["hook"]["name"], short["project_id"]) == (hook["name"], 4)
