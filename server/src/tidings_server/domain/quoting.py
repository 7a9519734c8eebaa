"""How error messages show a value the caller sent: quoted, and never more than a short prefix.

An error message travels back as gRPC trailing metadata, which has a hard size limit: a message
that quoted a 1 MiB name whole would fail as RESOURCE_EXHAUSTED instead of naming the field.
Every message that embeds a caller's value goes through ``quote``.
"""

from __future__ import annotations

LIMIT = 128  # whole for any name a caller means; a prefix of anything longer


def quote(value: str, limit: int = LIMIT) -> str:
    """``repr`` of ``value``, or of its first ``limit`` characters followed by its length."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"
