"""Every way a secret could sit in a file: what the raw-bytes tests look for."""

from __future__ import annotations

import base64
from pathlib import Path

from tidings_server.domain.signing import SECRET_PREFIX


def spellings(secret: str) -> set[bytes]:
    """An Authorization value and its credential part; a signing secret, its base64 part and the
    key bytes under it, raw, hex and base64 in both alphabets, with and without padding."""
    forms = {secret.encode()}
    _, _, credential = secret.partition(" ")
    if credential:
        forms.add(credential.encode())
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        key = base64.b64decode(encoded)
        forms |= {
            encoded.encode(),
            key,
            key.hex().encode(),
            key.hex().upper().encode(),
            base64.urlsafe_b64encode(key),
            base64.b64encode(key).rstrip(b"="),
            base64.urlsafe_b64encode(key).rstrip(b"="),
        }
    return forms


def found_in(files: list[Path], secrets: list[str]) -> list[str]:
    """ "secret #i in file" for each secret (in any spelling) found in any file's raw bytes."""
    found = []
    for file in files:
        data = file.read_bytes()
        for i, secret in enumerate(secrets):
            if any(form in data for form in spellings(secret)):
                found.append(f"secret #{i} in {file.name}")
    return found
