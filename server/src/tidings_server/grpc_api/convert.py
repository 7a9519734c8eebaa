"""Translation between protobuf messages and domain records; nothing else crosses the adapter."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from tidings.v1 import catalog_pb2, hooks_pb2
from tidings_server.domain.catalog import CatalogEntry, FormatInfo
from tidings_server.domain.errors import InvalidArgument
from tidings_server.domain.hooks import HookInput
from tidings_server.domain.model import Hook, HookStatus, Scope, Trigger
from tidings_server.domain.secrets import mask

_STATUS_TO_PROTO = {
    HookStatus.ACTIVE: hooks_pb2.HOOK_STATUS_ACTIVE,
    HookStatus.PAUSED: hooks_pb2.HOOK_STATUS_PAUSED,
    HookStatus.DISABLED: hooks_pb2.HOOK_STATUS_DISABLED,
}
_STATUS_FROM_PROTO = {v: k for k, v in _STATUS_TO_PROTO.items()}
_SCOPE_TO_PROTO = {Scope.COMPANY: catalog_pb2.SCOPE_COMPANY, Scope.PROJECT: catalog_pb2.SCOPE_PROJECT}
_SCOPE_FROM_PROTO = {v: k for k, v in _SCOPE_TO_PROTO.items()}


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def hook_status(field: str, value: int) -> HookStatus | None:
    """Decode a status; UNSPECIFIED means "not given", an unknown number is an error."""
    if value == hooks_pb2.HOOK_STATUS_UNSPECIFIED:
        return None
    status: HookStatus | None = _STATUS_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if status is None:
        raise InvalidArgument(f"{field}: {value} is not a known hook status")
    return status


def scope(field: str, value: int) -> Scope | None:
    if value == catalog_pb2.SCOPE_UNSPECIFIED:
        return None
    found: Scope | None = _SCOPE_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if found is None:
        raise InvalidArgument(f"{field}: {value} is not a known scope")
    return found


def hook_input(message: hooks_pb2.Hook) -> HookInput:
    return HookInput(
        display_name=message.display_name,
        destination_url=message.destination_url,
        authorization_header=message.authorization_header,
        payload_format=message.payload_format,
        status=hook_status("hook.status", message.status),
    )


def hook(value: Hook) -> hooks_pb2.Hook:
    """A hook as callers see it: the Authorization header is masked."""
    return hooks_pb2.Hook(
        name=value.name,
        display_name=value.display_name,
        destination_url=value.destination_url,
        authorization_header=mask(value.authorization_header),
        payload_format=value.payload_format,
        status=_STATUS_TO_PROTO[value.status],
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
    )


def trigger(value: Trigger) -> hooks_pb2.Trigger:
    return hooks_pb2.Trigger(
        name=value.name,
        resource_name=value.resource_name,
        event_type=value.event_type,
        create_time=timestamp(value.create_time),
    )


def catalog_resource(entry: CatalogEntry) -> catalog_pb2.CatalogResource:
    return catalog_pb2.CatalogResource(
        resource_name=entry.resource.name,
        scope=_SCOPE_TO_PROTO[entry.resource.scope],
        event_types=sorted(entry.resource.event_types),
        catalog=entry.catalog,
    )


def payload_format(info: FormatInfo) -> catalog_pb2.PayloadFormat:
    return catalog_pb2.PayloadFormat(
        name=info.name,
        description=info.description,
        content_type=info.content_type,
        distribution=info.distribution,
        version=info.version,
    )
