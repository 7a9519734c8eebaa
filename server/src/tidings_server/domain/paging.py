"""Page sizes and page tokens for every List method (AIP-158).

A token records where the previous page ended and a fingerprint of the request it belongs
to, so a token reused with another parent or filter is refused instead of silently skipping.
Tokens are opaque to callers but not secret: tampering can only move the cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tidings_server.domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


def cut(items: list[T], limit: int, key: Callable[[T], str], *request: str) -> Page[T]:
    """A page from up to ``limit + 1`` items: an extra item only says that more follow."""
    if len(items) > limit:
        return Page(items[:limit], encode_token(key(items[limit - 1]), *request))
    return Page(items, "")


def page_size(value: int) -> int:
    """0 means the default; above the maximum is reduced to it (AIP-158); negative is an error."""
    if value < 0:
        raise InvalidArgument(f"page_size: must not be negative, got {value}")
    if value == 0:
        return DEFAULT_PAGE_SIZE
    return min(value, MAX_PAGE_SIZE)


def _fingerprint(*request: str) -> str:
    return hashlib.sha256("\x00".join(request).encode()).hexdigest()[:16]


def encode_token(after: str, *request: str) -> str:
    raw = json.dumps({"a": after, "r": _fingerprint(*request)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, *request: str, field: str = "page_token") -> str | None:
    """The position after which the next page starts, or None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after, fingerprint = data["a"], data["r"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidArgument(f"{field}: not a token this server issued") from None
    if not isinstance(after, str) or not isinstance(fingerprint, str):
        raise InvalidArgument(f"{field}: not a token this server issued")
    if fingerprint != _fingerprint(*request):
        raise InvalidArgument(f"{field}: issued for a different request; repeat the other request fields unchanged")
    return after
