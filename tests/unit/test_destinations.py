"""Destination URL rules: what the secure defaults refuse, and what the options allow."""

from __future__ import annotations

import pytest

from tidings_server.domain.destinations import DestinationPolicy, check_destination, parse_destination
from tidings_server.domain.errors import InvalidArgument

STRICT = DestinationPolicy()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://hooks.example.com/", "must use https"),
        ("https://127.0.0.1/", "loopback address"),
        ("https://[::1]:8443/", "loopback address"),
        ("https://[::ffff:127.0.0.1]/", "loopback address"),
        ("https://10.0.0.8/", "private address"),
        ("https://192.168.1.1/", "private address"),
        ("https://172.16.5.4/", "private address"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://100.64.0.1/", "shared (carrier-grade NAT) address"),
        ("https://0.0.0.0/", "unspecified address"),
        ("https://localhost/", "loopback name"),
        ("https://localhost./", "loopback name"),
        ("https://[64:ff9b::a00:1]/", "private address"),
        ("https://[2002:a00:1::]/", "private address"),
        ("https://a..b.example.com/", "not a valid host name"),
        ("https://" + "x" * 64 + ".example.com/", "not a valid host name"),
        ("https://api.localhost/", "loopback name"),
        ("https://metadata.google.internal/", "cloud metadata"),
        ("https://hooks.example.com:0/", "port 0"),
        ("https://user:pw@hooks.example.com/", "credentials in the URL"),
        ("https://hooks.example.com/#frag", "fragment"),
        ("https://hooks.example.com:99999/", "not a valid URL"),
        ("hooks.example.com/in", "absolute https URL"),
        ("https:///in", "has no host"),
        ("https://hooks.example.com/" + "a" * 2048, "longer than the 2048 allowed"),
    ],
)
def test_refused(url: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_destination("hook.destination_url", url, STRICT)
    assert str(err.value).startswith("hook.destination_url: ")
    assert problem in str(err.value)


def test_options_allow_http_and_internal_hosts() -> None:
    loose = DestinationPolicy(allow_http=True, allow_private=True)
    assert parse_destination("u", "http://127.0.0.1:9000/in", loose).port == 9000
    only_one = DestinationPolicy(allowed_hosts=frozenset({"10.0.0.8"}))
    assert parse_destination("u", "https://10.0.0.8/in", only_one).hostname == "10.0.0.8"
    with pytest.raises(InvalidArgument, match="private address"):
        parse_destination("u", "https://10.0.0.9/in", only_one)


async def test_names_resolving_to_internal_addresses_are_refused() -> None:
    async def resolve(host: str) -> list[str]:
        return {"internal.example.com": ["93.184.216.34", "10.1.1.1"], "public.example.com": ["93.184.216.34"]}.get(
            host, []
        )

    with pytest.raises(InvalidArgument, match=r"resolves to 10\.1\.1\.1, a private address"):
        await check_destination("u", "https://internal.example.com/in", STRICT, resolve)
    assert await check_destination("u", "https://public.example.com/in", STRICT, resolve)
    # A name that does not resolve now is accepted: delivery checks the address it connects to.
    assert await check_destination("u", "https://unknown.example.com/in", STRICT, resolve)
