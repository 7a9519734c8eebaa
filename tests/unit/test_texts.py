"""Error text is bounded in one place: every attempt's error passes through ``policy.decide``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings_server.delivery.policy import Failure, Result, decide
from tidings_server.domain.model import RetryPolicy
from tidings_server.domain.states import Cause
from tidings_server.domain.texts import MAX_ERROR_CHARS, MAX_QUOTED_CHARS, bound_error

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("size", [0, 1, MAX_ERROR_CHARS])
def test_short_text_is_kept_whole(size: int) -> None:
    assert bound_error("e" * size) == "e" * size


@pytest.mark.parametrize(
    ("size", "note"),
    [
        (MAX_ERROR_CHARS + 1, " … [28 more characters cut]"),
        (2_000_000, " … [1,995,938 more characters cut]"),
        (10_000_000_000 // 1000, " … [9,995,938 more characters cut]"),
    ],
)
def test_long_text_keeps_its_start_and_says_how_much_was_cut(size: int, note: str) -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(size))
    bounded = bound_error(text)
    assert len(bounded) == MAX_ERROR_CHARS
    assert bounded == text[: MAX_ERROR_CHARS - len(note)] + note
    assert int(note.split("[")[1].split(" ")[0].replace(",", "")) == size - (MAX_ERROR_CHARS - len(note))


def test_a_quoted_part_leaves_room_for_the_words_around_it() -> None:
    quoted = bound_error("e" * 2_000_000, MAX_QUOTED_CHARS)
    assert len(quoted) == MAX_QUOTED_CHARS
    assert bound_error(f"payload format x (plugin y): render() raised {quoted}").endswith(quoted)


@pytest.mark.parametrize(
    "result",
    [
        Result(failure=Failure.RENDER, error="render() raised ValueError('" + "e" * 2_000_000 + "')"),
        Result(failure=Failure.CONNECT, error="could not connect: " + "x" * 100_000),
        Result(410, error="HTTP 410 " + "g" * 100_000),
    ],
    ids=["render", "connect", "gone"],
)
def test_every_decided_error_is_bounded(result: Result) -> None:
    decision = decide(result, RetryPolicy(), attempt_number=1, first_attempt_time=T0, now=T0, jitter=0.0)
    assert decision.cause in {Cause.PERMANENT_FAILURE, Cause.RETRYABLE_FAILURE}
    assert len(decision.error) <= MAX_ERROR_CHARS + len("; the hook is disabled")
    assert "more characters cut]" in decision.error
