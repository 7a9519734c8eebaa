"""What hooks can select and use: the merged resource catalog and the loaded payload formats."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tidings_server.domain import paging
from tidings_server.domain.errors import InvalidArgument
from tidings_server.domain.model import ResourceType, Scope
from tidings_server.domain.paging import Page
from tidings_server.domain.quoting import quote

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FormatInfo:
    """A payload format as ListPayloadFormats shows it."""

    name: str
    description: str
    content_type: str
    distribution: str
    version: str


def hook_scopes(resource: ResourceType) -> tuple[Scope, ...]:
    """The levels of the hooks that may select ``resource``: a company hook may select a
    project-level resource too, and receives it from the projects of its company."""
    if resource.scope is Scope.COMPANY:
        return (Scope.COMPANY,)
    return (Scope.COMPANY, Scope.PROJECT)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    resource: ResourceType
    catalog: str

    @property
    def hook_scopes(self) -> tuple[Scope, ...]:
        return hook_scopes(self.resource)


class CatalogService:
    """Pages over the catalog and the formats; both are fixed for the life of the process."""

    def __init__(
        self,
        resources: Callable[[Scope, str | None], Sequence[CatalogEntry]],
        formats: Sequence[FormatInfo],
    ) -> None:
        self._resources = resources
        self._formats = sorted(formats, key=lambda f: f.name)

    def list_resources(self, scope: Scope | None, payload_format: str, size: int, token: str) -> Page[CatalogEntry]:
        if scope is None:
            raise InvalidArgument("scope: required; SCOPE_COMPANY or SCOPE_PROJECT")
        if payload_format and payload_format not in {f.name for f in self._formats}:
            known = ", ".join(f.name for f in self._formats)
            raise InvalidArgument(f"payload_format: unknown payload format {quote(payload_format)}; known: {known}")
        return _page(
            list(self._resources(scope, payload_format or None)),
            lambda e: e.resource.name,
            size,
            token,
            scope.value,
            payload_format,
        )

    def list_formats(self, size: int, token: str) -> Page[FormatInfo]:
        return _page(self._formats, lambda f: f.name, size, token)


def _page(items: list[T], key: Callable[[T], str], size: int, token: str, *request: str) -> Page[T]:
    limit = paging.page_size(size)
    after = paging.decode_token(token, *request)
    rest = [i for i in items if after is None or key(i) > after][: limit + 1]
    return paging.cut(rest, limit, key, *request)
