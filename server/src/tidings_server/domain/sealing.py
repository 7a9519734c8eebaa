"""Secrets at rest: AES-256-GCM sealing of a hook's secrets under a keyring, newest key first.

A sealed value is text, so every store keeps it in the column the plaintext had:
``§sealed:v1:{key id}:{base64url(nonce ‖ ciphertext ‖ tag)}``. The key id (16 hex digits of a
SHA-256 over the key) says which key of the keyring opens it, so a rotation can re-seal row by
row while both keys read. The associated data is the hook's name and the field, so a sealed
value copied into another hook, or into another field of the same hook, does not open.
``§`` is not printable ASCII, which an Authorization header must be, and a signing secret
starts with ``whsec_``: a stored value that lacks the prefix is plaintext from before sealing.

AES-GCM from ``cryptography`` (OpenSSL underneath) rather than anything hand-written: it is the
AEAD the Python ecosystem maintains and audits, and AES-NI makes it cheap (docs/security.md).
The module is pure: keys come in as bytes, files and the environment are the caller's business.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tidings_server.domain.errors import DataLoss
from tidings_server.domain.model import Hook, HookDefinition, Template

PREFIX: Final = "§sealed:v1:"
KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12  # random per seal: 2**32 seals per key keep the collision chance negligible
SECRET_FIELDS: Final = ("authorization_header", "signing_secret", "previous_signing_secret")


class SealingError(DataLoss):
    """A sealed value cannot be opened (unknown key, or altered); the message names the hook
    and the field, never the value."""


def key_id(key: bytes) -> str:
    """The public name of a key: 16 hex digits of a SHA-256 over it (and a label, so the id is
    never the hash of the bare key that some other system might also publish)."""
    return hashlib.sha256(b"tidings secrets key id\x00" + key).hexdigest()[:16]


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def decode_keys(text: str, *, source: str) -> list[bytes]:
    """Keys from a keyring's text: base64 keys separated by newlines or commas, newest first;
    blank lines and lines starting with ``#`` are ignored. ``source`` names where the text came
    from in errors (never the text itself)."""
    keys: list[bytes] = []
    entries = [e.strip() for line in text.splitlines() if not line.lstrip().startswith("#") for e in line.split(",")]
    for number, line in enumerate((e for e in entries if e), start=1):
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{source}: key {number} is not base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(f"{source}: key {number} is {len(key)} bytes; a key is base64 of {KEY_BYTES} random bytes")
        keys.append(key)
    if not keys:
        raise ValueError(f"{source}: holds no key")
    return keys


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def sealed_key_id(value: str) -> str | None:
    """The id of the key ``value`` is sealed under; None for plaintext."""
    if not is_sealed(value):
        return None
    return value[len(PREFIX) :].split(":", 1)[0]


class Keyring:
    """The keys that open sealed values; the first one seals. Empty: nothing is sealed (the
    explicit plaintext mode), and any sealed value met is refused."""

    __slots__ = ("_ciphers", "_primary", "keys")

    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        self.keys: tuple[bytes, ...] = tuple(keys)
        for key in self.keys:
            if len(key) != KEY_BYTES:
                raise ValueError(f"a secrets key is {KEY_BYTES} bytes, got {len(key)}")
        self._ciphers = {key_id(k): AESGCM(k) for k in self.keys}
        self._primary = key_id(self.keys[0]) if self.keys else None

    def __repr__(self) -> str:  # never the keys
        return f"Keyring(ids={self.ids!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyring) and other.keys == self.keys

    def __hash__(self) -> int:
        return hash(self.ids)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    @property
    def primary_id(self) -> str | None:
        return self._primary

    def seal(self, plaintext: str, associated: str) -> str:
        """``plaintext`` sealed under the newest key; "" stays "" (no secret to hide), and with
        no key at all the plaintext is returned as it is."""
        if not plaintext or not self.keys:
            return plaintext
        kid = self._primary
        assert kid is not None
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[kid].encrypt(nonce, plaintext.encode("utf-8"), associated.encode("utf-8"))
        return f"{PREFIX}{kid}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, value: str, associated: str) -> str:
        """The plaintext of a sealed ``value``; a plaintext value (stored before sealing) as it is."""
        if not is_sealed(value):
            return value
        kid, _, blob = value[len(PREFIX) :].partition(":")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealingError(f"sealed under key {kid}, which the keyring does not hold")
        try:
            raw = base64.urlsafe_b64decode(blob.encode("ascii"))
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated.encode("utf-8")).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):
            raise SealingError("the sealed value does not open (altered, or moved here)") from None


def associated_data(hook_name: str, field: str) -> str:
    """What binds a sealed value to its place: the hook's name and the field."""
    return f"{hook_name}\x00{field}"


def _fields(hook: Hook) -> tuple[str, str, str]:
    return (hook.authorization_header, hook.signing_secret, hook.previous_signing_secret)


def _with_fields(hook: Hook, values: Sequence[str]) -> Hook:
    if tuple(values) == _fields(hook):
        return hook
    authorization, secret, previous = values
    return replace(hook, authorization_header=authorization, signing_secret=secret, previous_signing_secret=previous)


def seal_hook(keyring: Keyring, hook: Hook) -> Hook:
    """``hook`` with every secret field sealed under the newest key (re-sealed if it was sealed
    under an older one; left alone if it already is under the newest)."""
    values = []
    for name, value in zip(SECRET_FIELDS, _fields(hook), strict=True):
        if not is_sealed(value) or sealed_key_id(value) != keyring.primary_id:
            ad = associated_data(hook.name, name)
            try:
                value = keyring.seal(keyring.open(value, ad), ad)
            except SealingError as exc:
                raise SealingError(f"hook {hook.name}, {name}: {exc}") from None
        values.append(value)
    return _with_fields(hook, values)


def open_hook(keyring: Keyring, hook: Hook) -> Hook:
    """``hook`` with every secret field in plaintext."""
    values = []
    for name, value in zip(SECRET_FIELDS, _fields(hook), strict=True):
        if is_sealed(value):
            try:
                value = keyring.open(value, associated_data(hook.name, name))
            except SealingError as exc:
                raise SealingError(f"hook {hook.name}, {name}: {exc}") from None
        values.append(value)
    return _with_fields(hook, values)


def stale_fields(keyring: Keyring, hook: Hook) -> list[str]:
    """The secret values of ``hook`` not sealed under the newest key (plaintext, or an older key)."""
    return [value for value in _fields(hook) if value and sealed_key_id(value) != keyring.primary_id]


def stale_template_fields(keyring: Keyring, template: Template) -> list[str]:
    """The Authorization headers of ``template``'s definitions not sealed under the newest key."""
    return [
        d.authorization_header
        for d in template.hooks
        if d.authorization_header and sealed_key_id(d.authorization_header) != keyring.primary_id
    ]


def _definition_ad(template: Template, definition: HookDefinition) -> str:
    return associated_data(f"{template.name}/hooks/{definition.hook_id}", "authorization_header")


def seal_template(keyring: Keyring, template: Template) -> Template:
    """``template`` with each definition's Authorization header sealed under the newest key."""
    hooks = []
    for d in template.hooks:
        ad = _definition_ad(template, d)
        try:
            value = d.authorization_header
            if not is_sealed(value) or sealed_key_id(value) != keyring.primary_id:
                value = keyring.seal(keyring.open(value, ad), ad)
        except SealingError as exc:
            raise SealingError(f"template {template.name}, hook {d.hook_id}: {exc}") from None
        hooks.append(replace(d, authorization_header=value))
    return replace(template, hooks=tuple(hooks))


def open_template(keyring: Keyring, template: Template) -> Template:
    """``template`` with each definition's Authorization header in plaintext."""
    hooks = []
    for d in template.hooks:
        try:
            value = keyring.open(d.authorization_header, _definition_ad(template, d))
        except SealingError as exc:
            raise SealingError(f"template {template.name}, hook {d.hook_id}: {exc}") from None
        hooks.append(replace(d, authorization_header=value))
    return replace(template, hooks=tuple(hooks))
