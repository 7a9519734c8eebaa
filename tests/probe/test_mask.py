"""What a read shows of an Authorization header: at most the last 4 characters of its token
(the part after the scheme), and nothing of a token shorter than 16 characters."""

from __future__ import annotations

import pytest

from tests.harness import Api
from tests.http_sink import running_sink
from tidings.v1 import deliveries_pb2, hooks_pb2
from tidings_server.domain.secrets import mask


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ("", ""),
        ("Bearer 12345", "••••••"),
        ("Bearer abcdefghijk", "••••••"),
        ("Bearer 0123456789abcde", "••••••"),  # 15 characters
        ("Bearer 0123456789abcdef", "••••••cdef"),  # 16
        ("Basic ZXJwOnNlY3JldA==", "••••••dA=="),
        ("Bearer  spaced-out-token-1234 ", "••••••1234"),
        ("0123456789abcdef", "••••••cdef"),  # no scheme: the whole value is the token
        ("012345678901234", "••••••"),
        ("Digest username=admin, response=6629fae49393a05397450978507c4ef1", "••••••4ef1"),
    ],
)
def test_mask(header: str, shown: str) -> None:
    assert mask(header) == shown


def test_reads_and_recorded_attempts_show_the_mask(api: Api) -> None:
    with running_sink() as sink:
        for header, shown in (("Bearer 12345", "••••••"), ("Bearer 7f3a-secret-4e94b", "••••••e94b")):
            hook = api.hooks.CreateHook(
                hooks_pb2.CreateHookRequest(
                    parent="companies/8/projects/6778",
                    hook=hooks_pb2.Hook(
                        destination_url=sink.url(), payload_format="procore.v4", authorization_header=header
                    ),
                )
            )
            assert hook.authorization_header == shown
            assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name)).authorization_header == shown
            sent = api.deliveries.SendTestEvent(deliveries_pb2.SendTestEventRequest(name=hook.name))
            assert {h.name.lower(): h.value for h in sent.request_headers}["authorization"] == shown
            assert sink.requests[-1].header("Authorization") == header  # the receiver got it whole
