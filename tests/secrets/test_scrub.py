"""What receivers answer is scrubbed of the hook's own secrets before history keeps it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from tidings_server.delivery.scrub import scrub, scrub_attempt, scrub_text, secret_forms
from tidings_server.domain.model import Attempt
from tidings_server.domain.secrets import MASK
from tidings_server.domain.signing import new_secret
from tidings_server.testing.stores.samples import make_hook

AUTH = "Bearer 3f9c2d7a81e04b6f4e94b/+x="
SECRET = new_secret()
PREVIOUS = new_secret()
HOOK = make_hook(authorization_header=AUTH, signing_secret=SECRET, previous_signing_secret=PREVIOUS)
FORMS = secret_forms(HOOK)
M = MASK.encode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def _json(text: bytes) -> bytes:
    return json.dumps({"authorization": text.decode()}, ensure_ascii=False).encode()


# (what the receiver echoed, how it wrapped it): the wrapping must survive, the secret must not.
ECHOES = [
    (AUTH.encode(), lambda x: x),
    (b"3f9c2d7a81e04b6f4e94b/+x=", lambda x: x),
    (AUTH.encode(), _json),
    (AUTH.replace("/", "\\/").encode(), lambda x: b'{"a": "' + x + b'"}'),
    (quote(AUTH, safe="").encode(), lambda x: b"?token=" + x),
    (SECRET.encode(), lambda x: x),
    (SECRET.removeprefix("whsec_").encode(), lambda x: x),
    (_key(SECRET), lambda x: x),
    (_key(SECRET).hex().encode(), lambda x: x),
    (_key(SECRET).hex().upper().encode(), lambda x: x),
    (base64.urlsafe_b64encode(_key(SECRET)).rstrip(b"="), lambda x: x),
    (PREVIOUS.encode(), lambda x: x),
    (_key(PREVIOUS).hex().encode(), lambda x: x),
]


@pytest.mark.parametrize(("echo", "wrap"), ECHOES, ids=[str(i) for i in range(len(ECHOES))])
def test_every_spelling_of_a_secret_is_masked(echo: bytes, wrap: Callable[[bytes], bytes]) -> None:
    body = b"<p>you sent: " + wrap(echo) + b" which is wrong</p>"
    assert scrub(body, FORMS) == b"<p>you sent: " + wrap(M) + b" which is wrong</p>"


def test_a_basic_credential_is_masked_decoded_too() -> None:
    auth = "Basic " + base64.b64encode(b"erp-user:correct horse battery").decode()
    forms = secret_forms(make_hook(authorization_header=auth))
    scrubbed = scrub(b"user erp-user:correct horse battery rejected; password correct horse battery", forms)
    assert b"correct horse" not in scrubbed


def test_a_body_cut_inside_a_secret_loses_that_tail_only_when_cut() -> None:
    body = b"x" * 100 + AUTH.encode()[:15]
    assert scrub(body, FORMS, cut=True) == b"x" * 100 + M
    assert scrub(body, FORMS, cut=False) == body  # not cut: an ending like "Bearer 3f9c2d7" is its own
    short = b"x" * 100 + AUTH.encode()[:5]  # "Beare": too short to mean anything
    assert scrub(short, FORMS, cut=True) == short


def test_short_credentials_do_not_scrub_ordinary_text() -> None:
    forms = secret_forms(make_hook(authorization_header="Bearer abc"))
    assert scrub(b"abc Bearer", forms) == b"abc Bearer"
    assert scrub(b"got Bearer abc", forms) == b"got " + M


def test_an_attempt_is_scrubbed_in_headers_body_and_error_but_not_what_was_sent() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    attempt = Attempt(
        number=1,
        start_time=when,
        end_time=when,
        request_headers=(("Authorization", "••••••/+x="),),
        response_status=302,
        response_headers=(("WWW-Authenticate", f'Bearer error="invalid_token", token="{AUTH}"'), ("X-Ok", "fine")),
        response_body=f"no: {AUTH}".encode(),
        error=f"redirects are not followed (302 to https://x.example/?token={quote(AUTH, safe='')})",
    )
    scrubbed = scrub_attempt(attempt, HOOK, cut=False)
    assert scrubbed.response_headers == (
        ("WWW-Authenticate", f'Bearer error="invalid_token", token="{MASK}"'),
        ("X-Ok", "fine"),
    )
    assert scrubbed.response_body == f"no: {MASK}".encode()
    assert scrubbed.error == f"redirects are not followed (302 to https://x.example/?token={MASK})"
    assert scrubbed.request_headers == attempt.request_headers
    assert scrub_attempt(attempt, make_hook(authorization_header=""), cut=False) == attempt


def test_text_that_is_not_utf8_survives_scrubbing() -> None:
    text = b"\xff\xfe".decode("utf-8", "surrogateescape") + AUTH
    assert scrub_text(text, FORMS) == b"\xff\xfe".decode("utf-8", "surrogateescape") + MASK
