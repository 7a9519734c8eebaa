"""Internal addresses are refused in every spelling: at CreateHook and UpdateHook on a real
server with the default (strict) destination policy, and again by the sender at connect time,
when a name resolves to one of them.

IPv6 has many ways to write an IPv4 address (mapped, translated, compatible, NAT64, 6to4), and
each reaches the IPv4 address inside; multicast, reserved and unspecified ranges are no
destination either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.harness import Api, ServerThread, secrets_key
from tidings.v1 import hooks_pb2
from tidings_server.app import Config
from tidings_server.delivery.engine import USER_AGENT
from tidings_server.delivery.http import Sender
from tidings_server.delivery.policy import Failure
from tidings_server.domain.destinations import DestinationPolicy

PROJECT = "companies/8/projects/6778"

# host as written in a URL -> what the refusal says it is
INTERNAL = {
    # the forms a probe got through
    "[::127.0.0.1]": "an IPv4-compatible address",
    "[::ffff:0:7f00:1]": "an IPv6 form of 127.0.0.1, a loopback address",
    "[64:ff9b:1::7f00:1]": "a local-use NAT64 address",
    "[fec0::1]": "a site-local address",
    "224.0.0.1": "a multicast address",
    "[ff02::1]": "a multicast address",
    # more of the same families
    "[::ffff:127.0.0.1]": "an IPv6 form of 127.0.0.1, a loopback address",
    "[::ffff:a9fe:a9fe]": "an IPv6 form of 169.254.169.254, a link-local address",
    "[::ffff:0:a00:1]": "an IPv6 form of 10.0.0.1, a private address",
    "[::10.0.0.1]": "an IPv4-compatible address",
    "[64:ff9b::7f00:1]": "an IPv6 form of 127.0.0.1, a loopback address",
    "[64:ff9b::a9fe:a9fe]": "an IPv6 form of 169.254.169.254, a link-local address",
    "[64:ff9b::e000:1]": "an IPv6 form of 224.0.0.1, a multicast address",
    "[64:ff9b:1:2::1]": "a local-use NAT64 address",
    "[2002:7f00:1::]": "an IPv6 form of 127.0.0.1, a loopback address",
    "[2002:a9fe:a9fe::1]": "an IPv6 form of 169.254.169.254, a link-local address",
    "[2002:c0a8:101::1]": "an IPv6 form of 192.168.1.1, a private address",
    "[fec0:1::1]": "a site-local address",
    "[feff::1]": "a site-local address",
    "[ff0e::1]": "a multicast address",
    "239.255.255.250": "a multicast address",
    "[::ffff:224.0.0.1]": "an IPv6 form of 224.0.0.1, a multicast address",
    "255.255.255.255": "the broadcast address",
    "240.0.0.1": "a reserved address",
    "0.0.0.0": "the unspecified address",
    "[::]": "the unspecified address",
    "0.1.2.3": "a 'this network' address",
    "100.64.0.1": "a shared (carrier-grade NAT) address",
    "198.18.0.1": "a benchmarking address",
    "192.0.0.8": "an IETF protocol address",
    "[100::1]": "a discard-only address",
    "[2001:db8::1]": "a private address",
    "[fd00:ec2::254]": "a private address",
    "[fe80::1]": "a link-local address",
    "[::1]": "a loopback address",
    "127.0.0.1": "a loopback address",
}
PUBLIC = [
    "93.184.216.34",
    "[2606:4700:4700::1111]",
    "[::ffff:93.184.216.34]",
    "[64:ff9b::5db8:d822]",
    "[2002:5db8:d822::1]",
]


@pytest.fixture(scope="module")
def strict_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    store: Path = tmp_path_factory.mktemp("strict") / "tidings.sqlite3"
    server = ServerThread(
        Config(listen="127.0.0.1:0", store_url=f"sqlite:///{store}", secrets_key=secrets_key())
    ).start()
    api = Api.connect(server.port)
    try:
        yield api
    finally:
        api.channel.close()
        server.stop()


def create(api: Api, url: str, hook_id: str = "") -> hooks_pb2.Hook:
    hook = hooks_pb2.Hook(destination_url=url, payload_format="procore.v4")
    return api.hooks.CreateHook(hooks_pb2.CreateHookRequest(parent=PROJECT, hook_id=hook_id, hook=hook))


@pytest.mark.parametrize(("host", "reason"), INTERNAL.items(), ids=list(INTERNAL))
def test_create_refuses(strict_api: Api, host: str, reason: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        create(strict_api, f"https://{host}/in")
    details = err.value.details() or ""
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details.startswith("hook.destination_url: host "), details
    assert f"is {reason}" in details, details


def test_update_refuses_every_form_and_changes_nothing(strict_api: Api) -> None:
    hook = create(strict_api, "https://93.184.216.34/in", "public")
    for host, reason in INTERNAL.items():
        with pytest.raises(grpc.RpcError) as err:
            strict_api.hooks.UpdateHook(
                hooks_pb2.UpdateHookRequest(
                    hook=hooks_pb2.Hook(name=hook.name, destination_url=f"https://{host}/in"),
                    update_mask=field_mask_pb2.FieldMask(paths=["destination_url"]),
                )
            )
        assert (err.value.code(), reason in (err.value.details() or "")) == (grpc.StatusCode.INVALID_ARGUMENT, True)
    assert strict_api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name)).destination_url == hook.destination_url


@pytest.mark.parametrize("host", PUBLIC)
def test_public_forms_are_accepted(strict_api: Api, host: str) -> None:
    assert create(strict_api, f"https://{host}/in").destination_url == f"https://{host}/in"


async def test_the_sender_refuses_every_form_a_name_resolves_to() -> None:
    """A name checked at create time may resolve elsewhere later: the address connected to counts."""
    answers = {f"h{i}.example.com": host.strip("[]") for i, host in enumerate(INTERNAL)}

    async def resolve(name: str) -> list[str]:
        return [answers[name]]  # never a public one: a test must not reach off this machine

    async with Sender(DestinationPolicy(), USER_AGENT, resolve=resolve) as sender:
        for (name, address), reason in zip(answers.items(), INTERNAL.values(), strict=True):
            outcome = await sender.post(f"https://{name}/in", [], b"{}", 5.0)
            assert outcome.failure is Failure.REFUSED_DESTINATION, (name, outcome.error)
            assert outcome.error.startswith(f"{name} resolves to {address}, {reason}"), outcome.error


async def test_the_sender_refuses_every_literal_form() -> None:
    """A hook stored while the policy allowed it (or by an older server) is refused when sent."""
    async with Sender(DestinationPolicy(), USER_AGENT) as sender:
        for host, reason in INTERNAL.items():
            outcome = await sender.post(f"https://{host}/in", [], b"{}", 5.0)
            assert outcome.failure is Failure.REFUSED_DESTINATION, (host, outcome.error)
            assert outcome.error.startswith(f"{host.strip('[]')} is {reason}"), outcome.error
