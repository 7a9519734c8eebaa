"""The listen rule as a pure function: off loopback, plaintext must be asked for by name.

Without authentication (``--no-auth``) a non-loopback address is refused whatever the transport
(tests/auth); a real non-loopback listen is not tried here: tests stay on loopback.
"""

from __future__ import annotations

import pytest

from tidings_server.app import ConfigError, check_listen, plaintext_warning


@pytest.mark.parametrize("listen", ["127.0.0.1:50051", "localhost:0", "[::1]:6000", "127.8.9.10:1"])
def test_loopback_is_served_plaintext_or_tls(listen: str) -> None:
    assert check_listen(listen) is True
    assert check_listen(listen, tls=True) is True
    assert plaintext_warning(True, tls=False) is None


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "10.1.2.3:50051", "[::]:50051", "[2001:db8::1]:443"])
def test_plaintext_off_loopback_needs_the_flag(listen: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_listen(listen)
    assert str(refused.value).startswith("--listen: ")
    assert "--allow-plaintext" in str(refused.value)
    assert "--tls-cert" in str(refused.value)
    for allowed in ({"allow_plaintext": True}, {"tls": True}):
        assert check_listen(listen, **allowed) is False  # served, and said not to be loopback


def test_plaintext_off_loopback_is_warned_of() -> None:
    warning = plaintext_warning(False, tls=False)
    assert warning is not None
    assert "--allow-plaintext" in warning
    assert "unencrypted" in warning
    assert plaintext_warning(False, tls=True) is None


@pytest.mark.parametrize("listen", ["nohost", "127.0.0.1:99999", "example.com:50051"])
def test_malformed_addresses_are_refused_first(listen: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_listen(listen, tls=True, allow_plaintext=True)
    assert str(refused.value).startswith("--listen: ")
