"""tidings-client: talk to a tidings server from Python.

``Client`` blocks, ``AsyncClient`` is for asyncio; both return the plain values in
``tidings_client.types`` and raise the errors in ``tidings_client.errors``. This package imports
neither click nor rich: those serve only the ``tidings`` command (``tidings_client.cli``).
"""

from typing import TYPE_CHECKING, Any

from tidings_client._version import version
from tidings_client.client import Client
from tidings_client.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    TidingsError,
    Unauthenticated,
    Unavailable,
)
from tidings_client.options import Options, Retry, Tls
from tidings_client.types import (
    AppliedTemplate,
    Attempt,
    CatalogResource,
    Delivery,
    DeliveryChange,
    DeliveryFilter,
    DeliveryOrdering,
    DeliveryStatus,
    DeliveryView,
    EndpointTestResult,
    Event,
    EventMetadata,
    Hook,
    HookChanges,
    HookDefinition,
    HookOverview,
    HookStatus,
    PayloadFormat,
    PublishedEvent,
    RateLimit,
    RedeliverResult,
    RelatedResource,
    RetryPolicy,
    Scope,
    StatusRange,
    Template,
    Trigger,
)

if TYPE_CHECKING:
    from tidings_client.aio import AsyncClient


def __getattr__(name: str) -> Any:
    # grpc.aio (and asyncio) load only for code that uses AsyncClient: the CLI starts faster.
    if name == "__version__":
        return version()
    if name == "AsyncClient":
        from tidings_client.aio import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'tidings_client' has no attribute {name!r}")


__all__ = [
    "AlreadyExists",
    "AppliedTemplate",
    "AsyncClient",
    "Attempt",
    "CatalogResource",
    "Client",
    "DeadlineExceeded",
    "Delivery",
    "DeliveryChange",
    "DeliveryFilter",
    "DeliveryOrdering",
    "DeliveryStatus",
    "DeliveryView",
    "EndpointTestResult",
    "Event",
    "EventMetadata",
    "FailedPrecondition",
    "Hook",
    "HookChanges",
    "HookDefinition",
    "HookOverview",
    "HookStatus",
    "InvalidArgument",
    "NotFound",
    "Options",
    "OutOfRange",
    "PayloadFormat",
    "PermissionDenied",
    "PublishedEvent",
    "RateLimit",
    "RedeliverResult",
    "RelatedResource",
    "ResourceExhausted",
    "Retry",
    "RetryPolicy",
    "Scope",
    "StatusRange",
    "Template",
    "TidingsError",
    "Tls",
    "Trigger",
    "Unauthenticated",
    "Unavailable",
    "__version__",
]
