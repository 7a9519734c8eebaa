"""The retry policy as pure functions: causes, backoff, Retry-After and the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings_server.delivery.policy import Failure, Result, backoff, decide, parse_retry_after
from tidings_server.domain.model import RetryPolicy
from tidings_server.domain.states import Cause

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DEFAULT = RetryPolicy()


def verdict(
    result: Result, attempt: int = 1, policy: RetryPolicy = DEFAULT, now: datetime = T0
) -> tuple[Cause, object]:
    d = decide(result, policy, attempt_number=attempt, first_attempt_time=T0, now=now, jitter=0.0)
    return d.cause, d.next_attempt_time


@pytest.mark.parametrize(
    ("result", "cause"),
    [
        (Result(200), Cause.SUCCEEDED),
        (Result(204), Cause.SUCCEEDED),
        (Result(299), Cause.SUCCEEDED),
        (Result(301), Cause.PERMANENT_FAILURE),
        (Result(400), Cause.PERMANENT_FAILURE),
        (Result(404), Cause.PERMANENT_FAILURE),
        (Result(410), Cause.PERMANENT_FAILURE),
        (Result(408), Cause.RETRYABLE_FAILURE),
        (Result(429), Cause.RETRYABLE_FAILURE),
        (Result(500), Cause.RETRYABLE_FAILURE),
        (Result(503), Cause.RETRYABLE_FAILURE),
        (Result(599), Cause.RETRYABLE_FAILURE),
        (Result(failure=Failure.CONNECT), Cause.RETRYABLE_FAILURE),
        (Result(failure=Failure.TIMEOUT), Cause.RETRYABLE_FAILURE),
        (Result(failure=Failure.NETWORK), Cause.RETRYABLE_FAILURE),
        (Result(failure=Failure.RENDER), Cause.PERMANENT_FAILURE),
        (Result(failure=Failure.REFUSED_DESTINATION), Cause.PERMANENT_FAILURE),
    ],
)
def test_causes(result: Result, cause: Cause) -> None:
    assert verdict(result)[0] is cause


def test_gone_disables_the_hook_and_redirects_say_so() -> None:
    gone = decide(Result(410), DEFAULT, attempt_number=1, first_attempt_time=T0, now=T0, jitter=0.0)
    assert gone.disable_hook
    assert gone.error == "HTTP 410; the hook is disabled"
    moved = decide(Result(301), DEFAULT, attempt_number=1, first_attempt_time=T0, now=T0, jitter=0.0)
    assert moved.error == "HTTP 301: redirects are not followed"
    assert not moved.disable_hook


def test_backoff_doubles_to_the_cap_and_jitter_only_shortens() -> None:
    waits = [backoff(DEFAULT, n, 0.0).total_seconds() for n in range(1, 15)]
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
    assert backoff(DEFAULT, 3, 0.999).total_seconds() == pytest.approx(4 * (1 - 0.2 * 0.999))
    assert backoff(DEFAULT, 200, 0.0) == timedelta(hours=1)


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    assert verdict(Result(429, retry_after=timedelta(seconds=30))) == (
        Cause.RETRYABLE_FAILURE,
        T0 + timedelta(seconds=30),
    )
    # A shorter Retry-After never makes us retry sooner than the backoff.
    assert verdict(Result(503, retry_after=timedelta(0)), attempt=3)[1] == T0 + timedelta(seconds=4)
    assert verdict(Result(503, retry_after=timedelta(days=2)))[1] == T0 + timedelta(hours=1)


def test_window_exhausted_when_the_next_try_would_be_late() -> None:
    late = T0 + timedelta(hours=11, minutes=30)
    assert verdict(Result(500), attempt=20, now=late)[0] is Cause.WINDOW_EXHAUSTED
    assert verdict(Result(500), attempt=20, now=T0 + timedelta(hours=11))[0] is Cause.RETRYABLE_FAILURE


def test_overrides() -> None:
    strict = RetryPolicy(retryable_statuses=frozenset({503}), initial_backoff=timedelta(seconds=10))
    assert verdict(Result(500), policy=strict)[0] is Cause.PERMANENT_FAILURE
    assert verdict(Result(503), policy=strict, attempt=2)[1] == T0 + timedelta(seconds=20)


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", T0) == timedelta(seconds=120)
    assert parse_retry_after("Fri, 27 Nov 2026 12:01:00 GMT", T0) == timedelta(minutes=1)
    assert parse_retry_after("Fri, 27 Nov 2026 11:00:00 GMT", T0) == timedelta(0)
    assert parse_retry_after("soon", T0) is None
    # Hostile values from a receiver never raise: huge numbers are capped, odd digits ignored.
    assert parse_retry_after("100000000000000", T0) == timedelta(days=7)
    assert parse_retry_after("²", T0) is None
    assert parse_retry_after("Fri, 27 Nov 99999 12:01:00 GMT", T0) is None
    assert parse_retry_after(None, T0) is None
