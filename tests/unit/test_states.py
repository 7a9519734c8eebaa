"""The delivery state machine table: every allowed move, every refused one, and its diagram."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tidings_server.domain.model import DeliveryStatus as S
from tidings_server.domain.states import TRANSITIONS, Cause, IllegalTransition, diagram, sources, transition

EXPECTED = {
    (S.QUEUED, Cause.SUCCEEDED): S.DELIVERED,
    (S.RETRYING, Cause.SUCCEEDED): S.DELIVERED,
    (S.QUEUED, Cause.RETRYABLE_FAILURE): S.RETRYING,
    (S.RETRYING, Cause.RETRYABLE_FAILURE): S.RETRYING,
    (S.QUEUED, Cause.WINDOW_EXHAUSTED): S.DISCARDED,
    (S.RETRYING, Cause.WINDOW_EXHAUSTED): S.DISCARDED,
    (S.QUEUED, Cause.PERMANENT_FAILURE): S.FAILED,
    (S.RETRYING, Cause.PERMANENT_FAILURE): S.FAILED,
    (S.QUEUED, Cause.HOOK_GONE): S.DISCARDED,
    (S.RETRYING, Cause.HOOK_GONE): S.DISCARDED,
    (S.QUEUED, Cause.POISONED): S.FAILED,
    (S.RETRYING, Cause.POISONED): S.FAILED,
    (S.DELIVERED, Cause.REDELIVER): S.QUEUED,
    (S.FAILED, Cause.REDELIVER): S.QUEUED,
    (S.DISCARDED, Cause.REDELIVER): S.QUEUED,
}


@pytest.mark.parametrize(("status", "cause"), list(itertools.product(S, Cause)))
def test_every_pair_is_allowed_or_refused_as_designed(status: S, cause: Cause) -> None:
    if (status, cause) in EXPECTED:
        assert transition(status, cause) is EXPECTED[(status, cause)]
    else:
        with pytest.raises(IllegalTransition) as err:
            transition(status, cause)
        assert f"a {status.value} delivery cannot take {cause.name}" in str(err.value)


def test_table_is_exactly_the_design() -> None:
    assert dict(TRANSITIONS) == EXPECTED
    assert sources(Cause.HOOK_GONE) == {S.QUEUED, S.RETRYING}
    assert sources(Cause.REDELIVER) == {S.DELIVERED, S.FAILED, S.DISCARDED}


def test_docs_show_the_table_as_it_is() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    assert diagram() in docs, "docs/architecture.md is stale: paste domain.states.diagram() into it"
