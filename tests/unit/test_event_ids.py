"""Event ids made by the batch are the ULIDs python-ulid would read and write: the publish
time's milliseconds first, then 80 bits that start random in each millisecond and count up,
so ids sort in publish order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from ulid import ULID

from tidings_server.domain.event_ids import _encode, event_ids

T = datetime(2026, 12, 8, 2, 30, 15, 123_987, tzinfo=UTC)


def test_ids_parse_back_as_ulids_of_the_publish_millisecond() -> None:
    ids = event_ids(T, 500)
    assert len(set(ids)) == 500
    for made in ids:
        parsed = ULID.from_str(made)
        assert str(parsed) == made  # canonical: 26 upper-case digits, nothing python-ulid would respell
        assert parsed.datetime == datetime(2026, 12, 8, 2, 30, 15, 123_000, tzinfo=UTC)


def test_ids_of_one_millisecond_count_up_across_batches() -> None:
    start = T.replace(microsecond=456_100)
    first, second = event_ids(start, 3), event_ids(start + timedelta(microseconds=800), 2)  # the same millisecond
    values = [int.from_bytes(ULID.from_str(made).bytes, "big") for made in first + second]
    assert values == list(range(values[0], values[0] + 5))  # one apart, in the order made
    later = event_ids(start + timedelta(milliseconds=1), 1)
    assert later[0] > second[-1]  # a later millisecond sorts after, with fresh randomness
    assert ULID.from_str(later[0]).bytes[6:] != (
        int.from_bytes(ULID.from_str(second[-1]).bytes[6:], "big") + 1
    ).to_bytes(10, "big")


def test_every_digit_position_is_encoded_as_python_ulid_does() -> None:
    rng = random.Random(8)
    values = [0, 2**128 - 1, *(1 << bit for bit in range(128)), *(rng.getrandbits(128) for _ in range(200))]
    for value in values:
        assert _encode(value) == str(ULID.from_int(value))


def test_an_empty_batch_needs_no_ids() -> None:
    assert event_ids(datetime.now(UTC), 0) == []
