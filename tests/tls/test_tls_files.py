"""The TLS files are checked before gRPC sees them: at start a bad one is one line naming the
option and the file (exit 2); the checks themselves on real files."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.harness import SECRETS_ENV
from tests.tls_certs import Authority, Issued
from tidings_server import tls
from tidings_server.tls import TlsFileError, TlsFiles

SERVER = Path(sys.executable).parent / "tidings-server"


def refused(files: TlsFiles, now: datetime | None = None) -> TlsFileError:
    with pytest.raises(TlsFileError) as caught:
        tls.read(files, now)
    return caught.value


def test_good_files_read_whole(server_cert: Issued, authority: Authority) -> None:
    material = tls.read(TlsFiles(server_cert.cert_path, server_cert.key_path, authority.cert_path))
    assert material.cert_chain == server_cert.cert_pem
    assert material.key == server_cert.key_pem
    assert material.client_ca == authority.cert_pem
    assert material.subject == "CN=localhost"


def test_each_bad_file_is_named_with_its_option(server_cert: Issued, authority: Authority, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    other = authority.server("other")

    error = refused(TlsFiles(missing, server_cert.key_path))
    assert (error.option, error.path) == ("--tls-cert", missing)
    assert str(error) == f"--tls-cert: {missing}: cannot read it: No such file or directory"

    error = refused(TlsFiles(garbage, server_cert.key_path))
    assert (error.option, str(error)) == (
        "--tls-cert",
        f"--tls-cert: {garbage}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
    )

    error = refused(TlsFiles(server_cert.cert_path, server_cert.cert_path))  # the certificate as its own key
    assert error.option == "--tls-key"
    assert "holds no PEM private key" in str(error)

    error = refused(TlsFiles(server_cert.cert_path, other.key_path))
    assert (error.option, error.path) == ("--tls-key", other.key_path)
    assert f"is not the key of the certificate in {server_cert.cert_path}" in str(error)

    error = refused(TlsFiles(server_cert.cert_path, server_cert.key_path, garbage))
    assert (error.option, error.path) == ("--client-ca", garbage)


def test_an_encrypted_key_is_refused_saying_so(server_cert: Issued, tmp_path: Path) -> None:
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        server_cert.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"password"),
        )
    )
    error = refused(TlsFiles(server_cert.cert_path, locked))
    assert error.option == "--tls-key"
    assert "is encrypted" in str(error)


def test_an_expired_or_not_yet_valid_certificate_is_refused(server_cert: Issued, authority: Authority) -> None:
    expired = authority.issue("expired", "localhost", ("localhost",), server=True, expired=True)
    error = refused(TlsFiles(expired.cert_path, expired.key_path))
    assert error.option == "--tls-cert"
    assert "the certificate expired at" in str(error)
    error = refused(TlsFiles(server_cert.cert_path, server_cert.key_path), datetime.now(UTC) - timedelta(days=2))
    assert "is not valid before" in str(error)


def serve(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}, **SECRETS_ENV, **extra}
    return subprocess.run(
        [str(SERVER), "serve", "--listen", "127.0.0.1:0", "--store", "memory:", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_server_with_a_bad_file_does_not_start_and_says_which(server_cert: Issued, authority: Authority) -> None:
    other = authority.server("other")
    missing = server_cert.cert_path.with_name("missing.pem")
    assert one_line(serve("--tls-cert", str(missing), "--tls-key", str(server_cert.key_path))) == (
        f"tidings-server: --tls-cert: {missing}: cannot read it: No such file or directory"
    )
    line = one_line(serve("--tls-cert", str(server_cert.cert_path), "--tls-key", str(other.key_path)))
    assert line.startswith(f"tidings-server: --tls-key: {other.key_path}: is not the key of the certificate in")


def test_half_of_tls_is_refused_naming_the_missing_option(server_cert: Issued, authority: Authority) -> None:
    assert one_line(serve("--tls-key", str(server_cert.key_path))) == (
        "tidings-server: --tls-cert: --tls-key is given without it; TLS needs both"
    )
    assert one_line(serve("--tls-cert", str(server_cert.cert_path))) == (
        "tidings-server: --tls-key: --tls-cert is given without it; TLS needs both"
    )
    assert one_line(serve("--client-ca", str(authority.cert_path))) == (
        "tidings-server: --client-ca: mutual TLS needs TLS: give --tls-cert and --tls-key too"
    )


def test_the_files_come_from_the_environment_and_the_config_file_too(server_cert: Issued, tmp_path: Path) -> None:
    assert one_line(serve(TIDINGS_TLS_KEY=str(server_cert.key_path))) == (
        "tidings-server: --tls-cert: --tls-key is given without it; TLS needs both"
    )
    config = tmp_path / "server.toml"
    missing = tmp_path / "gone.key"
    config.write_text(f'tls-cert = "{server_cert.cert_path}"\ntls-key = "{missing}"\n')
    assert one_line(serve("--config", str(config))) == (
        f"tidings-server: --tls-key: {missing}: cannot read it: No such file or directory"
    )
