"""The CLI's parts for endpoint protection: rates as people write them, and the lines
`hooks get` and `hooks show` add for a limit, a disabled hook and an open circuit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.console import Console

from tidings_client.cli.hooks import hook_rows, overview_view
from tidings_client.cli.output import fields_table
from tidings_client.cli.params import parse_rate, rate_text
from tidings_client.types import DeliveryOrdering, Hook, HookOverview, HookStatus, RateLimit, RetryPolicy

T = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _hook(**changes: object) -> Hook:
    fields: dict[str, object] = {
        "name": "companies/8/hooks/erp",
        "display_name": "",
        "destination_url": "https://erp.example.com/in",
        "authorization_header": "",
        "payload_format": "procore.v4",
        "status": HookStatus.ACTIVE,
        "create_time": T,
        "update_time": T,
        "retry_policy": RetryPolicy(),
        "ordering": DeliveryOrdering.UNORDERED,
        "max_concurrency": 8,
        "signing_disabled": False,
        "signing_secret": "",
        "previous_secret_expire_time": None,
        **changes,
    }
    return Hook(**fields)  # type: ignore[arg-type]


def _text(renderable: object) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize(
    ("given", "per_second", "shown"),
    [("1000/min", 1000 / 60, "1000/min"), ("10/s", 10.0, "10/s"), ("3600/h", 1.0, "1/s"), ("90 / hour", 0.025, "90/h")],
)
def test_rates_parse_and_show_in_their_unit(given: str, per_second: float, shown: str) -> None:
    assert parse_rate(given) == pytest.approx(per_second)
    assert rate_text(parse_rate(given)) == shown


@pytest.mark.parametrize("bad", ["fast", "10/day", "0/s", "-5/min", "/min"])
def test_bad_rates_say_how_to_write_one(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a rate; use COUNT/UNIT"):
        parse_rate(bad)


def test_hook_lines_show_the_limit_and_why_tidings_disabled_it() -> None:
    limited = _text(fields_table(hook_rows(_hook(rate_limit=RateLimit.per_minute(1000, 50)))))
    assert "1000/min, burst 50" in limited
    reason = "disabled by tidings: no successful delivery for 5 days (failing since 2026-11-22T09:00:00+00:00)"
    disabled = _hook(status=HookStatus.DISABLED, disabled_reason=reason, disable_time=T)
    text = _text(fields_table(hook_rows(disabled)))
    assert "disabled" in text
    assert reason in text.replace("\n", "")


def test_overview_shows_an_open_circuit_and_a_limit_being_hit() -> None:
    overview = HookOverview(
        hook=_hook(rate_limit=RateLimit(2.0, 1)),
        queued_count=3,
        retrying_count=0,
        delivered_count=0,
        failed_count=0,
        discarded_count=0,
        success_rate=0.0,
        latency_p50=None,
        latency_p95=None,
        last_success_time=None,
        last_failure_time=None,
        last_failure_reason="",
        consecutive_failures=0,
        next_retry_time=None,
        rate_limited_time=T,
        circuit_open_time=T,
        next_probe_time=T,
    )
    text = _text(overview_view(overview))
    assert "last held a delivery back" in text
    assert "open since" in text
    assert "one probe at a time" in text
