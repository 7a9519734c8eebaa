"""The circuit breaker's rules on their own: no I/O, exact times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tidings_server.delivery.breaker import BreakerConfig, Breakers
from tidings_server.domain.model import RetryPolicy
from tidings_server.testing.stores.samples import make_hook

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
HOOK = make_hook(
    "companies/8/hooks/h",
    retry_policy=RetryPolicy(initial_backoff=timedelta(seconds=2), max_backoff=timedelta(seconds=16)),
)
RATIO_ONLY = BreakerConfig(consecutive=0, deactivate_after=None)


def _feed(breakers: Breakers, outcomes: str, start: datetime = T0, every: float = 1.0) -> list[bool]:
    """One attempt a second (``every``): ``o`` a success, ``x`` a failure; whether each opened."""
    return [
        breakers.observe(HOOK, f"d{n}", ok == "o", start + timedelta(seconds=n * every)).opened
        for n, ok in enumerate(outcomes)
    ]


def test_opens_at_the_tenth_attempt_when_seven_failed() -> None:
    breakers = Breakers(RATIO_ONLY)
    opened = _feed(breakers, "xoxoxxoxxx")  # 7 of 10 failed, never more than 3 in a row
    assert opened == [False] * 9 + [True]
    assert breakers.state(HOOK.name) == (T0 + timedelta(seconds=9), T0 + timedelta(seconds=11))


def test_six_failures_in_ten_keep_it_closed() -> None:
    breakers = Breakers(RATIO_ONLY)
    assert not any(_feed(breakers, "xoxoxxoxox"))
    assert not breakers.is_open(HOOK.name)


def test_successes_within_the_window_dilute_a_burst_of_failures() -> None:
    breakers = Breakers(RATIO_ONLY)
    assert not any(_feed(breakers, "o" * 20 + "x" * 20))  # 20 of 40 failed
    later = T0 + timedelta(minutes=10)  # the successes have left the window: 10 failures alone trip
    assert _feed(breakers, "x" * 10, later)[-1]


def test_a_streak_opens_when_configured() -> None:
    breakers = Breakers(BreakerConfig(consecutive=4, deactivate_after=None))
    assert _feed(breakers, "ooooxxxx") == [False] * 7 + [True]


def test_one_probe_at_a_time_on_the_backoff_then_a_success_closes() -> None:
    breakers = Breakers(BreakerConfig(consecutive=1, deactivate_after=None))
    assert breakers.observe(HOOK, "a", False, T0).opened
    assert breakers.admit(HOOK, "b", T0 + timedelta(seconds=1)) == T0 + timedelta(seconds=2)  # not yet
    assert breakers.admit(HOOK, "b", T0 + timedelta(seconds=2)) is None  # the probe
    assert breakers.admit(HOOK, "c", T0 + timedelta(seconds=2)) == T0 + timedelta(seconds=6)  # one at a time
    breakers.observe(HOOK, "b", False, T0 + timedelta(seconds=2))
    assert breakers.state(HOOK.name)[1] == T0 + timedelta(seconds=6)  # 4 s: the backoff doubled
    assert breakers.admit(HOOK, "c", T0 + timedelta(seconds=6)) is None
    assert breakers.observe(HOOK, "c", True, T0 + timedelta(seconds=6)).closed
    assert breakers.admit(HOOK, "d", T0 + timedelta(seconds=6)) is None
    assert breakers.state(HOOK.name) == (None, None)


def test_probes_never_go_past_the_deactivation_moment() -> None:
    breakers = Breakers(BreakerConfig(consecutive=1, deactivate_after=timedelta(seconds=5)))
    breakers.observe(HOOK, "a", False, T0)
    assert breakers.deactivate_at(HOOK.name) == T0 + timedelta(seconds=5)
    breakers.admit(HOOK, "b", T0 + timedelta(seconds=2))
    breakers.observe(HOOK, "b", False, T0 + timedelta(seconds=2))  # next would be 2 + 4 = 6
    assert breakers.state(HOOK.name)[1] == T0 + timedelta(seconds=5)


def test_a_failing_run_is_told_once_and_an_earlier_start_is_adopted() -> None:
    breakers = Breakers(BreakerConfig(consecutive=2, deactivate_after=timedelta(hours=1)))
    assert breakers.observe(HOOK, "a", False, T0 + timedelta(minutes=30)).failing_since == T0 + timedelta(minutes=30)
    opened = breakers.observe(HOOK, "b", False, T0 + timedelta(minutes=30))
    assert (opened.opened, opened.failing_since) == (True, None)  # the run began with "a"
    # The store had it failing since T0 (this node restarted): the period counts from there,
    # and the next probe (due 30:02) is kept to the deactivation moment only if later.
    breakers.adopt(HOOK, T0)
    assert breakers.failing_since(HOOK.name) == T0
    assert breakers.deactivate_at(HOOK.name) == T0 + timedelta(hours=1)
    assert breakers.state(HOOK.name)[1] == T0 + timedelta(minutes=30, seconds=2)
    breakers.adopt(HOOK, T0 + timedelta(minutes=10))  # a later time changes nothing
    assert breakers.failing_since(HOOK.name) == T0
    assert breakers.observe(HOOK, "c", True, T0 + timedelta(minutes=31)).closed
    assert breakers.last_success(HOOK.name) == T0 + timedelta(minutes=31)
    assert breakers.failing_since(HOOK.name) is None
    assert breakers.observe(HOOK, "d", False, T0 + timedelta(minutes=32)).failing_since == T0 + timedelta(minutes=32)


def test_adopting_caps_an_open_circuits_probe_at_the_new_deadline() -> None:
    breakers = Breakers(BreakerConfig(consecutive=1, deactivate_after=timedelta(seconds=10)))
    breakers.observe(HOOK, "a", False, T0 + timedelta(seconds=8))  # opens; probe at 8 + 2 s
    breakers.adopt(HOOK, T0 - timedelta(seconds=1.5))
    assert breakers.state(HOOK.name)[1] == T0 + timedelta(seconds=8.5)


def test_a_longer_retry_after_moves_the_probe_within_the_cap() -> None:
    breakers = Breakers(BreakerConfig(consecutive=1, deactivate_after=None))
    breakers.observe(HOOK, "a", False, T0, retry_after=timedelta(seconds=5))  # opens: max(2, 5)
    assert breakers.state(HOOK.name)[1] == T0 + timedelta(seconds=5)
    at = T0 + timedelta(seconds=5)
    assert breakers.admit(HOOK, "b", at) is None
    breakers.observe(HOOK, "b", False, at, retry_after=timedelta(seconds=1))  # shorter: the backoff (4 s)
    assert breakers.state(HOOK.name)[1] == at + timedelta(seconds=4)
    at += timedelta(seconds=4)
    assert breakers.admit(HOOK, "c", at) is None
    breakers.observe(HOOK, "c", False, at, retry_after=timedelta(hours=1))  # past the cap: max_backoff (16 s)
    assert breakers.state(HOOK.name)[1] == at + timedelta(seconds=16)
