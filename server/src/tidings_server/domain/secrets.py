"""Rules for secrets callers hand us (the Authorization header): what is accepted, how it is shown."""

from __future__ import annotations

from tidings_server.domain.errors import InvalidArgument

MAX_AUTHORIZATION_HEADER = 1024
MASK = "••••••"
_SHOWN = 5


def check_authorization_header(field_name: str, value: str) -> str:
    """Accept an optional header value: printable ASCII only, so it can never split a request."""
    if len(value) > MAX_AUTHORIZATION_HEADER:
        raise InvalidArgument(
            f"{field_name}: {len(value)} characters is longer than the {MAX_AUTHORIZATION_HEADER} allowed"
        )
    for i, c in enumerate(value):
        if not 0x20 <= ord(c) <= 0x7E:
            raise InvalidArgument(
                f"{field_name}: character {i + 1} is not printable ASCII; header values must be printable ASCII"
            )
    if value != value.strip():
        raise InvalidArgument(f"{field_name}: must not start or end with whitespace")
    return value


def mask(secret: str) -> str:
    """Show only the last 5 characters, and none of a secret too short to hide the rest."""
    if not secret:
        return ""
    if len(secret) <= 2 * _SHOWN:
        return MASK
    return MASK + secret[-_SHOWN:]
