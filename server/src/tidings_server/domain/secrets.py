"""Rules for secrets callers hand us (the Authorization header): what is accepted, how it is shown."""

from __future__ import annotations

from tidings_server.domain.errors import InvalidArgument

MAX_AUTHORIZATION_HEADER = 1024
MASK = "••••••"
SHOWN = 4  # characters of a token's end a read shows
MIN_SHOWN_LENGTH = 16  # a shorter token shows none: four characters would be too much of it


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
    """Show at most the last 4 characters of the token part (after a scheme such as ``Bearer``),
    and none of a token shorter than 16 characters, so a read never gives much of it away."""
    if not secret:
        return ""
    token = secret.split(" ", 1)[1].strip() if " " in secret else secret
    if len(token) < MIN_SHOWN_LENGTH:
        return MASK
    return MASK + token[-SHOWN:]
