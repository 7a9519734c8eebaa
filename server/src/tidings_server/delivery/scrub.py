"""Scrubbing what a receiver answers of the hook's own secrets before history keeps it.

A receiver may echo what it was sent: a 401 body quoting the Authorization header, a
``WWW-Authenticate`` repeating the token, a redirect whose Location carries it, a debugging
endpoint printing the signing secret. History is served back to anyone who may read the hook,
and the API never shows those secrets, so every response header, the body and the error text
are scrubbed in the one place an attempt is made (``DeliveryEngine._conclude``): of the whole
Authorization value, its credential part (and a Basic header's decoded ``user:password``), and
each signing secret (current and previous) with the key bytes under it, each also as JSON and
URL encodings write it. A body cut at the size bound may end in the first part of a secret:
that tail is masked too.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, quote_plus

from tidings_server.domain.model import Attempt, Hook
from tidings_server.domain.secrets import MASK
from tidings_server.domain.signing import SECRET_PREFIX

MIN_FORM: Final = 6  # shorter fragments are too common to mean a secret (and too short to help a thief)
_MASK_BYTES: Final = MASK.encode()


def _encodings(text: str) -> set[str]:
    return {
        text,
        json.dumps(text)[1:-1],
        json.dumps(text)[1:-1].replace("/", "\\/"),
        quote(text, safe=""),
        quote_plus(text, safe=""),
    }


def _authorization_forms(value: str) -> set[str]:
    forms = {value}
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if credential:
        forms.add(credential)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credential, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                decoded = ""
            if decoded:
                forms.add(decoded)
                forms.add(decoded.partition(":")[2])
    return forms


def _signing_forms(secret: str) -> tuple[set[str], set[bytes]]:
    texts = {secret}
    raw: set[bytes] = set()
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        texts.add(encoded)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if key:
            raw.add(key)
            texts |= {
                key.hex(),
                key.hex().upper(),
                base64.urlsafe_b64encode(key).decode(),
                base64.b64encode(key).decode().rstrip("="),
                base64.urlsafe_b64encode(key).decode().rstrip("="),
            }
    return texts, raw


@dataclass(frozen=True, slots=True)
class Forms:
    """The spellings to mask, longest first, and the few that detect any of them: those that
    contain no other (each spelling contains one of them), so clean text costs only those,
    in one search of a pattern that alternates them (one call, not one ``in`` per spelling:
    every header of every response is checked)."""

    masked: tuple[bytes, ...]
    detect: tuple[bytes, ...]
    detector: re.Pattern[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A pattern that never matches when there is nothing to detect.
        pattern = b"|".join(re.escape(form) for form in self.detect) or rb"(?!)"
        object.__setattr__(self, "detector", re.compile(pattern))

    def __bool__(self) -> bool:
        return bool(self.masked)


@functools.lru_cache(maxsize=1024)
def _forms(authorization: str, secrets: tuple[str, ...]) -> Forms:
    texts: set[str] = set()
    raw: set[bytes] = set()
    if authorization:
        texts |= _authorization_forms(authorization)
    for secret in secrets:
        found, keys = _signing_forms(secret)
        texts |= found
        raw |= keys
    encoded = {form.encode() for text in texts for form in _encodings(text)} | raw
    # Longest first, so a whole value is masked before a part of it could leave the rest showing.
    masked = tuple(sorted((f for f in encoded if len(f) >= MIN_FORM), key=len, reverse=True))
    return Forms(masked, tuple(f for f in masked if not any(g != f and g in f for g in masked)))


def secret_forms(hook: Hook) -> Forms:
    """Every spelling of the hook's secrets a receiver might send back (cached per hook's secrets)."""
    secrets = tuple(s for s in (hook.signing_secret, hook.previous_signing_secret) if s)
    return _forms(hook.authorization_header, secrets)


def scrub(data: bytes, forms: Forms, *, cut: bool = False) -> bytes:
    """``data`` with every form masked; ``cut``: ``data`` may end inside one, so mask that end."""
    if forms.detector.search(data) is not None:
        for form in forms.masked:
            if form in data:
                data = data.replace(form, _MASK_BYTES)
    if cut:
        data = _mask_tail(data, forms.masked)
    return data


def _mask_tail(data: bytes, forms: Iterable[bytes]) -> bytes:
    longest = 0
    for form in forms:
        window = data[-(len(form) - 1) :]
        start = window.find(form[:1])
        while start != -1:
            tail = len(window) - start
            if tail >= MIN_FORM and form.startswith(window[start:]):
                longest = max(longest, tail)
                break
            start = window.find(form[:1], start + 1)
    return data[:-longest] + _MASK_BYTES if longest else data


def scrub_text(text: str, forms: Forms) -> str:
    if not forms or not text:
        return text
    data = text.encode("utf-8", "surrogateescape")
    if forms.detector.search(data) is None:
        return text  # clean, as nearly every header is: no masking and no decoding
    return scrub(data, forms).decode("utf-8", "surrogateescape")


def scrub_attempt(attempt: Attempt, hook: Hook, *, cut: bool) -> Attempt:
    """``attempt`` with what the receiver sent (headers, body, and the error text quoting it)
    scrubbed of ``hook``'s secrets; ``cut``: the body was cut at the size bound."""
    forms = secret_forms(hook)
    if not forms:
        return attempt
    return Attempt(
        number=attempt.number,
        start_time=attempt.start_time,
        end_time=attempt.end_time,
        request_headers=attempt.request_headers,
        response_status=attempt.response_status,
        response_headers=tuple((k, scrub_text(v, forms)) for k, v in attempt.response_headers),
        response_body=scrub(attempt.response_body, forms, cut=cut),
        error=scrub_text(attempt.error, forms),
    )
