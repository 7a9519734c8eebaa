"""The server's TLS files: read and checked at start, read again on SIGHUP.

gRPC takes whatever bytes it is given and fails only at the first handshake, with a log line
that names no file: a wrong path or a key of another certificate would show up as clients
that cannot connect. So the files are checked here, with ``cryptography``, before gRPC sees
them: each is a PEM of the right kind, the key is the certificate's, the certificate is valid
now. At start a bad file stops the server (the message names the option and the file); on
reload it is logged and the certificates in use stay, so a half-copied file never takes a
running server off the air.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the server's certificate chain, its key and (for mutual TLS) the client CA are."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """The checked contents of the files, as gRPC takes them."""

    cert_chain: bytes
    key: bytes
    client_ca: bytes | None
    subject: str  # the leaf's subject, for logs
    not_after: datetime


class TlsFileError(Exception):
    """A TLS file that cannot be used: names the option, the file and the problem."""

    def __init__(self, option: str, path: Path, problem: str) -> None:
        super().__init__(f"{option}: {path}: {problem}")
        self.option = option
        self.path = path


def _read(option: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsFileError(option, path, f"cannot read it: {exc.strerror or exc}") from None


def _certificates(option: str, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found:
        raise TlsFileError(option, path, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return found


def _private_key(path: Path, data: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # a password is needed
        raise TlsFileError("--tls-key", path, "is encrypted; give the key unencrypted (mode 0600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsFileError("--tls-key", path, "holds no PEM private key (-----BEGIN PRIVATE KEY-----)") from None


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def read(files: TlsFiles, now: datetime | None = None) -> TlsMaterial:
    """The files' contents, checked; ``TlsFileError`` names the first one that is wrong."""
    now = now or datetime.now(UTC)
    chain = _read("--tls-cert", files.cert)
    leaf = _certificates("--tls-cert", files.cert, chain)[0]
    key_pem = _read("--tls-key", files.key)
    key = _private_key(files.key, key_pem)
    if _public(key.public_key()) != _public(leaf.public_key()):
        raise TlsFileError(
            "--tls-key", files.key, f"is not the key of the certificate in {files.cert} (the public keys differ)"
        )
    if now > leaf.not_valid_after_utc:
        raise TlsFileError(
            "--tls-cert", files.cert, f"the certificate expired at {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now < leaf.not_valid_before_utc:
        raise TlsFileError(
            "--tls-cert",
            files.cert,
            f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
        )
    client_ca = None
    if files.client_ca is not None:
        client_ca = _read("--client-ca", files.client_ca)
        _certificates("--client-ca", files.client_ca, client_ca)
    return TlsMaterial(chain, key_pem, client_ca, leaf.subject.rfc4514_string(), leaf.not_valid_after_utc)


class Certificates:
    """The material new connections are served with, replaced by ``reload``.

    Read from the gRPC thread (at each handshake) and replaced from the trio thread (on
    SIGHUP), hence the lock. ``generation`` counts successful loads, so the reader can tell
    whether what it handed gRPC last is still current.
    """

    def __init__(self, files: TlsFiles, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.files = files
        self._clock = clock
        self._lock = threading.Lock()
        self._material = read(files, clock())
        self._generation = 0

    @property
    def mutual(self) -> bool:
        """Whether clients must present a certificate signed by the client CA."""
        return self.files.client_ca is not None

    def current(self) -> tuple[int, TlsMaterial]:
        with self._lock:
            return self._generation, self._material

    def reload(self) -> bool:
        """Read the files again; on any problem keep serving the material in use, and say so."""
        try:
            material = read(self.files, self._clock())
        except TlsFileError as exc:
            log.error(
                "TLS files not reloaded, the certificate in use stays: %s",
                exc,
                extra={"option": exc.option, "file": str(exc.path)},
            )
            return False
        with self._lock:
            self._material = material
            self._generation += 1
        log.info(
            "TLS files reloaded; new connections get the new certificate",
            extra={
                "subject": material.subject,
                "not_after": material.not_after.isoformat(),
                "cert": str(self.files.cert),
            },
        )
        return True
