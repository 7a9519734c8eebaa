"""The sealing rules: what a sealed value looks like, what opens it, and what does not."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from tidings_server.domain import sealing
from tidings_server.domain.sealing import Keyring, SealingError, key_id, new_key, open_hook, seal_hook
from tidings_server.domain.signing import new_secret
from tidings_server.testing.stores.samples import make_hook

HOOK = "companies/1/projects/2/hooks/h"
AD = sealing.associated_data(HOOK, "authorization_header")


def test_a_sealed_value_names_its_key_and_opens_to_the_plaintext() -> None:
    key = new_key()
    keyring = Keyring([key])
    sealed = keyring.seal("Bearer 3f9c2d7a81e04b6f4e94b", AD)
    assert sealed.startswith(f"§sealed:v1:{key_id(key)}:")
    assert "3f9c2d7a81e04b6f4e94b" not in sealed
    assert sealing.sealed_key_id(sealed) == key_id(key)
    assert keyring.open(sealed, AD) == "Bearer 3f9c2d7a81e04b6f4e94b"
    assert keyring.seal("Bearer 3f9c2d7a81e04b6f4e94b", AD) != sealed  # a fresh nonce each time


def test_plaintext_from_before_sealing_reads_as_it_is_and_empty_stays_empty() -> None:
    keyring = Keyring([new_key()])
    assert keyring.open("Bearer old-plaintext", AD) == "Bearer old-plaintext"
    assert keyring.seal("", AD) == ""
    assert sealing.sealed_key_id("Bearer old-plaintext") is None


def test_a_value_moved_to_another_hook_or_field_does_not_open() -> None:
    keyring = Keyring([new_key()])
    sealed = keyring.seal("Bearer 3f9c2d7a81e04b6f4e94b", AD)
    with pytest.raises(SealingError, match="does not open"):
        keyring.open(sealed, sealing.associated_data("companies/1/projects/2/hooks/other", "authorization_header"))
    with pytest.raises(SealingError, match="does not open"):
        keyring.open(sealed, sealing.associated_data(HOOK, "signing_secret"))


@pytest.mark.parametrize("position", [-1, -20, len("§sealed:v1:0123456789abcdef:") + 2])
def test_an_altered_value_does_not_open(position: int) -> None:
    keyring = Keyring([new_key()])
    sealed = keyring.seal("Bearer 3f9c2d7a81e04b6f4e94b", AD)
    flipped = "B" if sealed[position] != "B" else "C"
    altered = sealed[:position] + flipped + sealed[position + 1 :] if position != -1 else sealed[:-1] + flipped
    with pytest.raises(SealingError, match="does not open"):
        keyring.open(altered, AD)


def test_the_newest_key_seals_and_every_key_opens() -> None:
    old, new = new_key(), new_key()
    sealed_old = Keyring([old]).seal("secret one", AD)
    both = Keyring([new, old])
    assert both.primary_id == key_id(new)
    assert both.open(sealed_old, AD) == "secret one"
    assert sealing.sealed_key_id(both.seal("secret two", AD)) == key_id(new)
    with pytest.raises(SealingError, match=f"sealed under key {key_id(old)}, which the keyring does not hold"):
        Keyring([new]).open(sealed_old, AD)


def test_a_hook_is_sealed_field_by_field_and_opens_equal() -> None:
    keyring = Keyring([new_key()])
    hook = make_hook(HOOK, signing_secret=new_secret(), previous_signing_secret=new_secret())
    sealed = seal_hook(keyring, hook)
    for field in sealing.SECRET_FIELDS:
        assert sealing.is_sealed(getattr(sealed, field))
    assert dataclasses.replace(sealed, **{f: getattr(hook, f) for f in sealing.SECRET_FIELDS}) == hook
    assert open_hook(keyring, sealed) == hook
    assert seal_hook(keyring, sealed) is sealed  # already under the newest key: left alone
    assert sealing.stale_fields(keyring, sealed) == []
    newer = Keyring([new_key(), *keyring.keys])
    assert len(sealing.stale_fields(newer, sealed)) == 3
    resealed = seal_hook(newer, sealed)
    assert {sealing.sealed_key_id(getattr(resealed, f)) for f in sealing.SECRET_FIELDS} == {newer.primary_id}
    assert open_hook(Keyring(newer.keys[:1]), resealed) == hook


def test_a_hook_whose_secret_does_not_open_is_named_without_the_value() -> None:
    hook = seal_hook(Keyring([new_key()]), make_hook(HOOK))
    with pytest.raises(SealingError) as caught:
        open_hook(Keyring([new_key()]), hook)
    assert str(caught.value).startswith(f"hook {HOOK}, authorization_header: sealed under key ")
    assert hook.authorization_header not in str(caught.value)


def test_no_key_is_plaintext_mode_which_refuses_sealed_values() -> None:
    plain = Keyring()
    hook = make_hook(HOOK)
    assert seal_hook(plain, hook) == hook
    with pytest.raises(SealingError, match="does not hold"):
        open_hook(plain, seal_hook(Keyring([new_key()]), hook))


def test_keyring_text_is_base64_keys_newest_first() -> None:
    a, b = new_key(), new_key()
    text = f"# a comment\n{base64.b64encode(a).decode()}\n\n  {base64.b64encode(b).decode()}  \n"
    assert sealing.decode_keys(text, source="f") == [a, b]
    assert sealing.decode_keys(f"{base64.b64encode(a).decode()},{base64.b64encode(b).decode()}", source="e") == [a, b]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "f: holds no key"),
        ("# only a comment\n", "f: holds no key"),
        ("not base64!\n", "f: key 1 is not base64"),
        (base64.b64encode(b"short").decode(), "f: key 1 is 5 bytes; a key is base64 of 32 random bytes"),
    ],
)
def test_a_bad_keyring_is_refused_naming_where_and_which(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(") + "$"):
        sealing.decode_keys(text, source="f")


def test_a_keyring_never_shows_its_keys() -> None:
    key = new_key()
    keyring = Keyring([key])
    assert base64.b64encode(key).decode() not in repr(keyring)
    assert key.hex() not in repr(keyring)
    assert key_id(key) in repr(keyring)
