"""``tidings hooks create/update --auth-header-file PATH|-``: the header comes from a file or
stdin, so it never appears in a process list; the real CLI against a real server process."""

from __future__ import annotations

from pathlib import Path

from tests.client.cli_run import Cli, Result
from tests.client.conftest import cli, project, sink  # noqa: F401 - fixtures
from tests.http_sink import Sink


def test_the_header_is_read_from_a_file_and_from_stdin(cli: Cli, project: str, sink: Sink, tmp_path: Path) -> None:  # noqa: F811
    token = tmp_path / "erp-token.txt"
    token.write_text("Bearer 3f9c2d7a81e04b6f4e94b\n")  # as an editor or `echo` leaves it
    created = cli.ok(
        "--json", "hooks", "create", "--project", project, "--url", sink.url("/erp"), "--format", "procore.v4",
        "--auth-header-file", str(token),
    ).json()["hook"]  # fmt: skip
    assert created["authorization_header"] == "••••••e94b"
    cli.ok("hooks", "test", created["name"])
    assert sink.requests[-1].header("Authorization") == "Bearer 3f9c2d7a81e04b6f4e94b"

    updated = cli.ok(
        "--json",
        "hooks",
        "update",
        created["name"],
        "--auth-header-file",
        "-",
        input="Basic ZXJwOnNlY3JldC0xMjM0NTY=\n",
    ).json()
    assert updated["authorization_header"] == "••••••NTY="
    cli.ok("hooks", "test", created["name"])
    assert sink.requests[-1].header("Authorization") == "Basic ZXJwOnNlY3JldC0xMjM0NTY="


def assert_usage_error(result: Result, fragment: str) -> None:
    """Click's usage error: exit 2, the usage line, and one ``Error:`` line that says why."""
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    [error] = [line for line in result.err.splitlines() if line.startswith("Error: ")]
    assert fragment in error, error


def test_bad_uses_are_usage_errors(cli: Cli, project: str, tmp_path: Path) -> None:  # noqa: F811
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    base = ("hooks", "create", "--project", project, "--url", "http://127.0.0.1:9/in", "--format", "procore.v4")
    both = cli(*base, "--auth-header", "Bearer x", "--auth-header-file", str(empty))
    assert_usage_error(both, "give --auth-header or --auth-header-file, not both")
    assert_usage_error(cli(*base, "--auth-header-file", str(empty)), f"{empty} holds no header")
    assert_usage_error(cli(*base, "--auth-header-file", str(tmp_path / "nope.txt")), "No such file or directory")
