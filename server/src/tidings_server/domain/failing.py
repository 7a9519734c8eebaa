"""Since when a hook's endpoint fails without a success, as the store keeps it for deactivation:
the rule every backend applies in ``Store.mark_failing``, so they cannot drift apart."""

from __future__ import annotations

from datetime import datetime


def holding(recorded: datetime | None, successes: tuple[datetime | None, ...], since: datetime) -> datetime:
    """The failing-since time that holds after a node reports ``since``: the ``recorded`` one
    when it is earlier and no success (of those known: the hook's health, the reporting node's
    own) came at or after it, otherwise ``since``."""
    if recorded is None or recorded > since:
        return since
    if any(success is not None and success >= recorded for success in successes):
        return since
    return recorded
