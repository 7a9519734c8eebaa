"""Connection options shared by Client and AsyncClient: where, how securely, as whom, how patiently."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from tidings_client._version import version

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Tls:
    """TLS for the channel. With no root certificates the system's trust store is used.

    A client certificate and key together turn on mutual TLS. ``server_name`` overrides the
    name the server's certificate is checked against (for a target given as an IP address).
    """

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        root_certificates: str | Path | None = None,
        certificate_chain: str | Path | None = None,
        private_key: str | Path | None = None,
        server_name: str | None = None,
    ) -> Tls:
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return cls(read(root_certificates), read(certificate_chain), read(private_key), server_name)

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("a client certificate needs its private key, and a key its certificate")

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.root_certificates, self.private_key, self.certificate_chain)


@dataclass(frozen=True)
class Retry:
    """How UNAVAILABLE is retried for calls that are safe to repeat (and how watch reconnects).

    Waits grow exponentially from ``initial_backoff`` by ``multiplier`` up to ``max_backoff``
    seconds, each jittered to between half and all of its value so that many clients that
    lost one server do not return in step. ``max_attempts`` counts the first attempt.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")

    def backoff(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not secrecy

    def delays(self) -> Iterator[float]:
        """The waits between attempts: ``max_attempts - 1`` of them."""
        for retry in range(1, self.max_attempts):
            yield self.backoff(retry)


NO_RETRY = Retry(max_attempts=1)


@dataclass(frozen=True)
class Options:
    """Everything a client needs to reach a server.

    ``timeout`` is the default deadline of each unary call in seconds (None: no deadline);
    every method also takes its own ``timeout``. ``token`` is sent as
    ``authorization: Bearer <token>`` on every call.
    """

    target: str = DEFAULT_TARGET
    tls: Tls | None = None
    token: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    retry: Retry = field(default_factory=Retry)
    channel_options: Sequence[tuple[str, str | int]] = ()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def grpc_options(self) -> list[tuple[str, str | int]]:
        opts: list[tuple[str, str | int]] = [("grpc.primary_user_agent", f"tidings-client/{version()}")]
        if self.tls is not None and self.tls.server_name:
            opts.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return opts + list(self.channel_options)


def retryable(code: grpc.StatusCode) -> bool:
    """UNAVAILABLE means the call did not reach a server that could answer it: try again."""
    return code == grpc.StatusCode.UNAVAILABLE


def resumable(code: grpc.StatusCode) -> bool:
    """A watch that ended this way can continue from its last resume token."""
    return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


HEALTHY_STREAM_SECONDS = 30.0
"""A watch stream that lasted this long was a working connection: its end starts the count
of failed reconnects afresh, so a quiet watch survives any number of idle drops."""

WATCH_START_METADATA = "tidings-resume-token"
"""Initial metadata of a watch stream: the resume token of where it starts, before any change."""

_DROPPED_AT = re.compile(r"resume_token=(\S+)")


def dropped_at(details: str | None) -> str:
    """The resume token a server names when it drops a slow watcher ("" if none)."""
    found = _DROPPED_AT.search(details or "")
    return found.group(1) if found else ""


def started_at(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The resume token a watch stream's initial metadata names ("" if none)."""
    for key, value in metadata or ():
        if key == WATCH_START_METADATA:
            return value.decode() if isinstance(value, bytes) else value
    return ""
