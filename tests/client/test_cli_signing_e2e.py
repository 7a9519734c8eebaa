"""Signing secrets through the ``tidings`` command: a real CLI process against a real server process.

The secret an admin copies from the command's output is the one that must verify deliveries,
so the receiver here checks each request with the PyPI ``standardwebhooks`` library, as an
admin's receiver would, using exactly what ``hooks create`` and ``hooks rotate-secret`` printed.
"""

from __future__ import annotations

import itertools
import os
import pty
import re
import select
import subprocess
import time
from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.client.cli_run import TIDINGS, Cli, assert_one_line_error
from tests.http_sink import Request, Sink

_resource_ids = itertools.count(80000)
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def create(cli: Cli, project: str, url: str, *extra: str) -> dict[str, object]:
    """``hooks create --json`` for RFI updates; the hook as printed, secret included."""
    printed = cli.ok(
        "--json",
        "hooks",
        "create",
        "--project",
        project,
        "--url",
        url,
        "--format",
        "procore.v4",
        "--event",
        "RFIs:update",
        *extra,
    ).json()
    hook: dict[str, object] = printed["hook"]
    return hook


def deliver_one(cli: Cli, project: str, sink: Sink) -> Request:
    """Publish one RFI update with the CLI and return the request the receiver got for it."""
    resource_id = str(next(_resource_ids))
    [published] = cli.ok(
        "--json",
        "publish",
        "--project",
        project,
        "--resource",
        "RFIs",
        "--resource-id",
        resource_id,
        "--event-type",
        "update",
        "--user-id",
        "5447",
    ).json()
    event_id = published["event_id"]
    assert not sink.wait_for({event_id}, timeout=15)
    with sink.arrived:
        [request] = [r for r in sink.requests if r.header("Tidings-Delivery-Id") == event_id]
    return request


def verifies(secret: str, request: Request) -> bool:
    try:
        Webhook(secret).verify(request.body, dict(request.headers))
    except WebhookVerificationError:
        return False
    return True


def test_create_prints_the_secret_once(cli: Cli, project: str) -> None:
    created = cli.ok(
        "hooks", "create", "--project", project, "--url", "http://127.0.0.1:9/in", "--format", "procore.v4", "--id", "a"
    )
    [secret] = SECRET.findall(created.out)
    assert re.search(r"^signing secret\s+whsec_", created.out, re.MULTILINE)
    assert re.search(r"^signing\s+on\b", created.out, re.MULTILINE)
    assert "shown once" in created.err
    assert "store it now" in created.err
    name = f"companies/{project.replace('/', '/projects/')}/hooks/a"
    assert name in created.err  # the note names the rotate-secret command for this hook

    shown = cli.ok("hooks", "get", name).out
    assert re.search(r"^signing\s+on\b", shown, re.MULTILINE)
    assert "whsec_" not in shown
    assert "previous secret" not in shown  # no rotation yet, so no overlap to show
    assert secret not in cli.ok("hooks", "list", "--project", project).out
    assert secret not in cli.ok("--json", "hooks", "get", name).out

    printed = cli.ok(
        "--json", "hooks", "create", "--project", project, "--url", "http://127.0.0.1:9/in", "--format", "procore.v4"
    )
    hook = printed.json()["hook"]
    assert SECRET.fullmatch(hook["signing_secret"])
    assert hook["signing_disabled"] is False
    assert hook["previous_secret_expire_time"] is None
    assert "shown once" in printed.err  # stdout stays JSON only
    assert cli.ok("--json", "hooks", "get", hook["name"]).json() == {**hook, "signing_secret": ""}


def test_rotate_secret_round_trip(cli: Cli, project: str) -> None:
    name = create(cli, project, "http://127.0.0.1:9/in")["name"]
    assert isinstance(name, str)

    refused = cli("hooks", "rotate-secret", name)  # no terminal to ask on
    assert refused.code == 2
    assert "--yes" in refused.err
    assert cli.ok("--json", "hooks", "get", name).json()["previous_secret_expire_time"] is None

    before = datetime.now(UTC)
    rotated_run = cli.ok("--json", "hooks", "rotate-secret", name, "--overlap", "2h", "--yes")
    after = datetime.now(UTC)
    rotated = rotated_run.json()
    assert rotated["name"] == name
    assert SECRET.fullmatch(rotated["signing_secret"])
    assert "shown once" in rotated_run.err
    expire = datetime.fromisoformat(rotated["previous_secret_expire_time"].replace("Z", "+00:00"))
    assert before + timedelta(hours=2) - timedelta(seconds=1) <= expire <= after + timedelta(hours=2)
    # What rotate-secret printed is what get prints, but for the secret.
    assert cli.ok("--json", "hooks", "get", name).json() == {**rotated, "signing_secret": ""}
    [listed] = cli.ok("--json", "hooks", "list", "--project", project).json()
    assert listed == {**rotated, "signing_secret": ""}

    until = expire.strftime("%Y-%m-%d %H:%M:%SZ")
    assert re.search(rf"^previous secret\s+also signs until {until}", cli.ok("hooks", "get", name).out, re.MULTILINE)
    assert f"previous until {until}" in cli.ok("hooks", "list", "--project", project).out
    assert f"also signs until {until}" in cli.ok("hooks", "show", name).out

    # Without --overlap the server's default applies: 24 hours.
    default = cli.ok("--json", "hooks", "rotate-secret", name, "-y").json()
    expire = datetime.fromisoformat(default["previous_secret_expire_time"].replace("Z", "+00:00"))
    assert abs(expire - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    assert default["signing_secret"] != rotated["signing_secret"]

    at_once = cli.ok("hooks", "rotate-secret", name, "--overlap", "0", "--yes")
    assert len(SECRET.findall(at_once.out)) == 1
    assert re.search(r"^previous secret\s+no longer signs", at_once.out, re.MULTILINE)
    assert "previous secret" not in cli.ok("hooks", "get", name).out

    assert_one_line_error(
        cli("hooks", "rotate-secret", name, "--overlap", "8d", "--yes"), 2, "INVALID_ARGUMENT", "overlap"
    )
    assert "not a duration" in cli("hooks", "rotate-secret", name, "--overlap", "soon", "--yes").err
    missing = cli("hooks", "rotate-secret", f"companies/{project.replace('/', '/projects/')}/hooks/nope", "--yes")
    assert_one_line_error(missing, 3, "NOT_FOUND")


def test_deliveries_verify_with_the_printed_secrets(cli: Cli, project: str, sink: Sink) -> None:
    created = cli.ok(
        "hooks", "create", "--project", project, "--url", sink.url(), "--format", "procore.v4", "--event", "RFIs:update"
    )
    [first] = SECRET.findall(created.out)
    request = deliver_one(cli, project, sink)
    assert request.header("webhook-signature")
    assert verifies(first, request)
    name = next(
        line.split()[1] for line in created.out.splitlines() if line.startswith("name\t")
    )  # piped: tab-separated

    # During the overlap a delivery verifies with either secret, so receivers switch at leisure.
    second = cli.ok("--json", "hooks", "rotate-secret", name, "--overlap", "1h", "--yes").json()["signing_secret"]
    request = deliver_one(cli, project, sink)
    assert verifies(second, request)
    assert verifies(first, request)

    # With no overlap only the newest secret signs.
    [third] = SECRET.findall(cli.ok("hooks", "rotate-secret", name, "--overlap", "0s", "--yes").out)
    request = deliver_one(cli, project, sink)
    assert verifies(third, request)
    assert not verifies(second, request)
    assert not verifies(first, request)


def test_signing_off_and_on(cli: Cli, project: str, sink: Sink) -> None:
    hook = create(cli, project, sink.url(), "--no-signing")
    name = hook["name"]
    assert isinstance(name, str)
    assert (hook["signing_disabled"], hook["signing_secret"]) == (True, "")  # no secret to keep
    assert re.search(r"^signing\s+off\b", cli.ok("hooks", "get", name).out, re.MULTILINE)
    request = deliver_one(cli, project, sink)
    assert request.header("webhook-signature") is None
    assert request.header("webhook-id") is None

    # Signing later: rotate-secret prints the secret, then signing turns on with it.
    secret = cli.ok("--json", "hooks", "rotate-secret", name, "--overlap", "0", "--yes").json()["signing_secret"]
    assert cli.ok("--json", "hooks", "update", name, "--signing").json()["signing_disabled"] is False
    assert verifies(secret, deliver_one(cli, project, sink))
    off = cli.ok("--json", "hooks", "update", name, "--no-signing").json()
    assert off["signing_disabled"] is True
    assert off["signing_secret"] == ""
    assert deliver_one(cli, project, sink).header("webhook-signature") is None

    # Rotating a hook with signing off gives it a secret but leaves signing off, and says so.
    rotated = cli.ok("hooks", "rotate-secret", name, "--yes")
    assert re.search(r"^signing\s+off\b", rotated.out, re.MULTILINE)
    assert f"hooks update {name} --signing" in rotated.err


def answer_in_terminal(cli: Cli, args: list[str], answer: bytes) -> tuple[int, str]:
    """Run the command on a terminal, give ``answer`` once it asks, and return its exit code and screen."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [str(TIDINGS), *args], stdin=terminal, stdout=terminal, stderr=terminal, env=cli.env(COLUMNS="160")
    )
    os.close(terminal)
    screen = b""
    answered = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the command is done
                break
            if not chunk:
                break
            screen += chunk
            if not answered and b"[y/N]" in screen:
                os.write(controller, answer)
                answered = True
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    return proc.wait(10), screen.decode("utf-8", "replace")


def test_rotate_secret_asks_on_a_terminal(cli: Cli, project: str) -> None:
    name = create(cli, project, "http://127.0.0.1:9/in")["name"]
    assert isinstance(name, str)

    code, screen = answer_in_terminal(cli, ["hooks", "rotate-secret", name, "--overlap", "90m"], b"n\n")
    assert code == 1  # declining changes nothing, says so, and is not an error
    assert "nothing changed" in screen
    assert "error" not in screen
    assert f"Give {name} a new signing secret? The current one keeps signing for 1h30m." in screen
    assert "whsec_" not in screen
    assert cli.ok("--json", "hooks", "get", name).json()["previous_secret_expire_time"] is None  # nothing rotated

    code, screen = answer_in_terminal(cli, ["hooks", "rotate-secret", name, "--overlap", "0"], b"y\n")
    assert code == 0
    assert "The current one stops at once." in screen
    assert len(SECRET.findall(screen)) == 1
    assert "shown once" in screen
