"""``tidings hooks`` and a hook's rate limit, end to end: a real CLI process against a real
server process (the limit's effect on deliveries is tested in virtual time, tests/delivery)."""

from __future__ import annotations

from tests.client.cli_run import Cli, assert_one_line_error


def test_rate_limit_on_create_update_and_show(cli: Cli, project: str) -> None:
    base = ("hooks", "create", "--project", project, "--url", "http://127.0.0.1:9/in", "--format", "procore.v4")
    hook = cli.ok("--json", *base, "--rate-limit", "1000/min", "--burst", "50").json()["hook"]
    assert hook["rate_limit"]["burst"] == 50
    assert abs(hook["rate_limit"]["per_second"] - 1000 / 60) < 1e-9
    assert hook["disabled_reason"] == ""
    name = hook["name"]
    shown = cli.ok("hooks", "show", name).out
    assert "1000/min, burst 50" in shown
    assert "circuit" in shown
    assert "closed" in shown

    changed = cli.ok("--json", "hooks", "update", name, "--rate-limit", "10/s").json()
    assert changed["rate_limit"] == {"per_second": 10.0, "burst": 1}
    removed = cli.ok("--json", "hooks", "update", name, "--rate-limit", "none").json()
    assert removed["rate_limit"] is None
    assert "rate limit" in cli.ok("hooks", "get", name).out

    for usage, said in (
        (cli(*base, "--rate-limit", "fast"), "'fast' is not a rate"),
        (cli("hooks", "update", name, "--burst", "5"), "--burst needs --rate-limit"),
    ):
        assert (usage.code, "Traceback" in usage.err) == (2, False)
        assert said in usage.err
    assert_one_line_error(cli(*base, "--rate-limit", "20000/s"), 2, "INVALID_ARGUMENT", "hook.rate_limit.per_second")
