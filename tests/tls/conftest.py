"""Fixtures for the TLS tests: a certificate authority of the test's own, and a server's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tls_certs import Authority, Issued


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "ca")


@pytest.fixture
def server_cert(authority: Authority) -> Issued:
    """A server certificate for localhost, 127.0.0.1 and ::1."""
    return authority.server()
