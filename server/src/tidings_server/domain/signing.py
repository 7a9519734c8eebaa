"""Standard Webhooks signing: the secrets hooks are given and the headers that prove a delivery.

A receiver checks ``webhook-signature`` against its copy of the secret, over the exact bytes it
received, and rejects a ``webhook-timestamp`` too far from its own clock (replays). The format
is the one https://www.standardwebhooks.com specifies, so any of its libraries verifies ours.
The module is pure (no I/O, no clock of its own): the engine passes the attempt time, which is
how virtual-time tests see exact timestamps.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 - the marker Standard Webhooks secrets start with, not a secret
SECRET_BYTES = 32  # within the 24 to 64 bytes the spec asks for
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
HEADERS = frozenset({ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER})


def new_secret() -> str:
    """A fresh secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a signing secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)


@functools.lru_cache(maxsize=4096)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC keyed with ``secret`` and fed nothing, to copy for each signature: keying one
    afresh (decoding the secret, OpenSSL's set-up) cost more than the hashing of a body."""
    return hmac.new(_key(secret), digestmod=hashlib.sha256)


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` and the base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under ``secret``."""
    mac = _keyed(secret).copy()
    mac.update(f"{message_id}.{timestamp}.".encode())
    mac.update(body)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def headers(secrets_: Iterable[str], message_id: str, sent_at: datetime, body: bytes) -> list[tuple[str, str]]:
    """The three Standard Webhooks headers for one attempt, or none when there is no secret.

    ``sent_at`` is the attempt time: a retry is signed afresh, so its timestamp is current and a
    receiver's replay window never rejects a late retry. Several secrets (during a rotation's
    overlap) give several signatures, space-separated; a receiver accepts any one that matches.
    """
    keys = list(secrets_)
    if not keys:
        return []
    timestamp = int(sent_at.timestamp())
    signatures = " ".join(signature(key, message_id, timestamp, body) for key in keys)
    return [(ID_HEADER, message_id), (TIMESTAMP_HEADER, str(timestamp)), (SIGNATURE_HEADER, signatures)]
