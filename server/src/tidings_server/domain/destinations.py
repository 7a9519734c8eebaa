"""Which destination URLs hooks may use: scheme, size, and the refusal of internal addresses.

A webhook service that POSTs wherever it is told is a server-side request forgery tool, so
loopback, private, link-local, shared, multicast, reserved and metadata addresses are refused
unless the server is configured to allow them, and so are IPv6 forms that carry one of them
inside (IPv4-mapped, -translated and -compatible, NAT64, 6to4). Names are resolved at creation
time too; a name that does not resolve now is accepted, because delivery checks the address it
actually connects to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from tidings_server.domain.errors import InvalidArgument
from tidings_server.domain.quoting import quote

MAX_URL_LENGTH = 2048
_net = ipaddress.ip_network
# IPv6 ranges whose low 32 bits are an IPv4 address that traffic reaches: judge that address.
_EMBEDDING_V4 = (
    _net("::ffff:0:0/96"),  # IPv4-mapped
    _net("::ffff:0:0:0/96"),  # IPv4-translated (SIIT, RFC 2765)
    _net("64:ff9b::/96"),  # NAT64, well-known prefix (RFC 6052)
)
# Refused whatever they carry: where the IPv4 address sits is up to the local operator, or the
# form is deprecated and has no business as a destination.
_REFUSED_V6 = (
    (_net("::/96"), "an IPv4-compatible address (deprecated; it embeds an IPv4 address)"),
    (_net("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_net("fec0::/10"), "a site-local address"),
    (_net("100::/64"), "a discard-only address"),
)
# IPv4 ranges not covered by every Python's is_private/is_global (they have changed between
# versions), spelled out so the rule does not depend on the interpreter.
_REFUSED_V4 = (
    (_net("0.0.0.0/8"), "a 'this network' address"),
    (_net("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
    (_net("192.0.0.0/24"), "an IETF protocol address"),
    (_net("198.18.0.0/15"), "a benchmarking address"),
    (_net("255.255.255.255/32"), "the broadcast address"),
    (_net("240.0.0.0/4"), "a reserved address"),
)
_METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})

Resolver = Callable[[str], Awaitable[list[str]]]
"""Resolve a host name to its IP addresses; [] when it does not resolve."""


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """The server's rules for destination URLs (set by ``serve`` options)."""

    allow_http: bool = False
    allow_private: bool = False
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)


def forbidden_address(text: str) -> str | None:
    """Why an IP address is not a public destination, or None if it is one."""
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if isinstance(ip, ipaddress.IPv6Address):
        for network, reason in _REFUSED_V6:
            if ip in network:
                return reason
        # Addresses that carry an IPv4 address inside reach that address: judge the inner one.
        embedded = ip.sixtofour
        if embedded is None and any(ip in network for network in _EMBEDDING_V4):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = forbidden_address(str(embedded))
            return None if inner is None else f"an IPv6 form of {embedded}, {inner}"
    else:
        for net4, reason in _REFUSED_V4:
            if ip in net4:
                return reason
    if ip.is_link_local:
        return "a link-local address (this includes cloud metadata services)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "not a public address"
    return None


def forbidden_name(host: str) -> str | None:
    """Why a host (name or literal) is not a public destination, or None if nothing says so."""
    host = host.rstrip(".")  # "localhost." is localhost
    if host == "localhost" or host.endswith(".localhost"):
        return "a loopback name"
    if host in _METADATA_NAMES:
        return "a cloud metadata service"
    return forbidden_address(host)


def parse_destination(field_name: str, value: str, policy: DestinationPolicy) -> SplitResult:
    """Check everything about a destination URL that needs no network; return it split."""
    if not value:
        raise InvalidArgument(f"{field_name}: required")
    if len(value) > MAX_URL_LENGTH:
        raise InvalidArgument(f"{field_name}: {len(value)} characters is longer than the {MAX_URL_LENGTH} allowed")
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value):
        raise InvalidArgument(
            f"{field_name}: must be ASCII without spaces or control characters; percent-encode the path"
            " and write an international host name in its xn-- form"
        )
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError as exc:
        raise InvalidArgument(f"{field_name}: {quote(value)} is not a valid URL: {exc}") from None
    scheme = url.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidArgument(f"{field_name}: must be an absolute https URL, got scheme {quote(url.scheme or 'none')}")
    if scheme == "http" and not policy.allow_http:
        raise InvalidArgument(f"{field_name}: must use https (this server does not allow http destinations)")
    host = (url.hostname or "").lower()
    if not host:
        raise InvalidArgument(f"{field_name}: {quote(value)} has no host")
    if not is_ip(host) and not _valid_name(host):
        raise InvalidArgument(
            f"{field_name}: {quote(host)} is not a valid host name (labels of 1 to 63 letters, digits or hyphens)"
        )
    if url.username is not None or url.password is not None:
        raise InvalidArgument(f"{field_name}: credentials in the URL are not allowed; use authorization_header")
    if port == 0:
        raise InvalidArgument(f"{field_name}: port 0 is not a valid destination port")
    if url.fragment:
        raise InvalidArgument(f"{field_name}: a fragment (#…) is never sent; remove it")
    if not allowed(host, policy):
        reason = forbidden_name(host)
        if reason is not None:
            raise InvalidArgument(f"{field_name}: host {quote(host)} is {reason}; such destinations are refused")
    return url


def allowed(host: str, policy: DestinationPolicy) -> bool:
    """Whether the policy lets ``host`` through whatever it is (an option, or the allow-list)."""
    return policy.allow_private or host in policy.allowed_hosts


async def check_destination(field_name: str, value: str, policy: DestinationPolicy, resolve: Resolver) -> str:
    """Full check of a destination URL, including where its host name resolves to now."""
    url = parse_destination(field_name, value, policy)
    host = (url.hostname or "").lower()
    if allowed(host, policy) or is_ip(host):  # IP literals were fully checked above
        return value
    for address in await resolve(host):
        reason = forbidden_address(address)
        if reason is not None:
            raise InvalidArgument(
                f"{field_name}: host {quote(host)} resolves to {address}, {reason}; such destinations are refused"
            )
    return value


def _valid_name(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63 and not label.startswith("-") and not label.endswith("-")
        and all(c.isalnum() or c == "-" for c in label)
        for label in labels
    )  # fmt: skip


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IP literal (so it needs no lookup)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
