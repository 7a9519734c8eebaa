"""Where the secrets key comes from: a keyring file or ``TIDINGS_SECRETS_KEY``, and how key files
are written (mode 0600 whatever the umask, replaced atomically).

A keyring is base64 keys, newest first, one per line (a file) or comma-separated (the
environment); the newest seals, every one of them opens. A file is re-read when it changes, so a
running server learns of a key ``secrets rotate-key`` added without being restarted.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tidings_server.domain.sealing import Keyring, decode_keys, encode_key, key_id, new_key

ENV_VAR: Final = "TIDINGS_SECRETS_KEY"
PRIVATE: Final = 0o600
_HEADER = "# tidings secrets keyring: base64 AES-256 keys, newest first; the first seals, all open\n"


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(slots=True)
class KeySource:
    """A keyring and where it was read from (``path`` None: the environment, never re-read)."""

    keyring: Keyring
    path: Path | None = None
    _stamp: tuple[int, int, int] | None = field(default=None, repr=False)

    @classmethod
    def from_file(cls, path: Path) -> KeySource:
        stamp = _stamp(path)
        return cls(read_keyring(path), path, stamp)

    @classmethod
    def from_env(cls, value: str) -> KeySource:
        return cls(Keyring(decode_keys(value, source=ENV_VAR)))

    def reload(self) -> Keyring | None:
        """Re-read the file if it changed since it was last read; the new keyring, or None when
        nothing changed. Blocking (a stat, and a read when it changed)."""
        if self.path is None:
            return None
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return None
        keyring = read_keyring(self.path)
        self._stamp = stamp
        if keyring == self.keyring:
            return None
        self.keyring = keyring
        return keyring


def read_keyring(path: Path) -> Keyring:
    """The keyring in ``path``; ValueError naming the file (never a key) when it is not one."""
    try:
        text = path.read_text("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: is not a keyring (base64 keys, one per line)") from None
    return Keyring(decode_keys(text, source=str(path)))


def write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600, whatever the umask).

    ``replace``: swap it in atomically (a new file renamed over the old one, so a reader sees the
    old keyring or the new one, never half of one); otherwise refuse an existing file.
    """
    if not replace:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
        _write_fd(fd, text)
        return
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: 0600 already
    try:
        _write_fd(fd, text)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def _write_fd(fd: int, text: str) -> None:
    with os.fdopen(fd, "w", encoding="ascii") as file:
        os.fchmod(file.fileno(), PRIVATE)  # the mode os.open was given is masked by the umask
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def keyring_text(keys: list[bytes]) -> str:
    return _HEADER + "".join(f"{encode_key(k)}\n" for k in keys)


def init_key(path: Path) -> str:
    """Create a keyring file holding one new key; the key's id. FileExistsError if it exists."""
    key = new_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, keyring_text([key]), replace=False)
    return key_id(key)


def add_key(path: Path) -> str:
    """Put a new key first in the keyring file (it seals from now on; the others still open)."""
    keys = list(read_keyring(path).keys)
    key = new_key()
    write_private(path, keyring_text([key, *keys]), replace=True)
    return key_id(key)


def retire_old_keys(path: Path) -> list[str]:
    """Keep only the newest key in the keyring file; the ids of the keys removed."""
    keys = list(read_keyring(path).keys)
    write_private(path, keyring_text(keys[:1]), replace=True)
    return [key_id(k) for k in keys[1:]]
