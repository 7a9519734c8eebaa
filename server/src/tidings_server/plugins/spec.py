"""Every hook specification tidings offers to plugins, and the interfaces they return.

A plugin is a module (or object) with functions marked ``@hookimpl`` and published in the
``tidings`` entry-point group of its distribution::

    [project.entry-points.tidings]
    my_formats = "my_package.plugin"

Built-in plugins use the same entry-point group; nothing is registered any other way.
Each ``tidings_*`` hook returns a list and every plugin's list is merged, so several
plugins can contribute formats, stores and catalogs side by side.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import pluggy

from tidings_server.domain.model import Event, ResourceType

if TYPE_CHECKING:
    from tidings_server.domain.ports import Store

PROJECT = "tidings"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a payload format may know about the hook it renders for."""

    hook_name: str
    payload_format: str


@dataclass(frozen=True, slots=True)
class RenderedPayload:
    """A rendered request: the body and the headers the format wants (Content-Type at least)."""

    headers: Mapping[str, str]
    body: bytes


# What a rendered payload may be. The engine enforces these on every render and the author's kit
# (tidings_server.testing) checks them, so a format that passes the kit is never refused live.
MAX_BODY_BYTES = 1024 * 1024
MAX_HEADERS = 16
MAX_HEADER_VALUE_CHARS = 1024
# Headers tidings sets itself: a format must not replace credentials, signatures, the delivery
# id receivers de-duplicate on, or what the HTTP client computes (Host, Content-Length, …).
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "tidings-delivery-id",
        "tidings-hook",
        "user-agent",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class RenderError(Exception):
    """A rendered payload breaks the contract above; the message says how."""


def check_rendered(rendered: object) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and body of ``rendered``, or RenderError naming what is wrong with them.

    Header names must be HTTP tokens and not reserved; values printable ASCII (no CR or LF, so a
    header can never split the request); Content-Type must be present; sizes are bounded.
    """
    if not isinstance(rendered, RenderedPayload):
        raise RenderError(f"render() returned a {type(rendered).__name__}, not a RenderedPayload")
    body = rendered.body
    if not isinstance(body, bytes):
        raise RenderError(f"render() returned a {type(body).__name__} body, not bytes")
    if len(body) > MAX_BODY_BYTES:
        raise RenderError(f"render() returned {len(body)} bytes, more than the {MAX_BODY_BYTES} allowed")
    if not isinstance(rendered.headers, Mapping):
        raise RenderError(f"render() returned headers as a {type(rendered.headers).__name__}, not a mapping")
    headers = list(rendered.headers.items())
    if len(headers) > MAX_HEADERS:
        raise RenderError(f"render() returned {len(headers)} headers, more than the {MAX_HEADERS} allowed")
    seen: set[str] = set()
    for name, value in headers:
        if not isinstance(name, str) or not isinstance(value, str):
            kinds = f"{type(name).__name__}: {type(value).__name__}"
            raise RenderError(f"header {name!r}: names and values must be str, not {kinds}")
        if not _TOKEN.fullmatch(name):
            raise RenderError(f"header {name!r}: not a valid HTTP header name")
        lowered = name.lower()
        if lowered in RESERVED_HEADERS:
            raise RenderError(f"header {name!r}: reserved; tidings sets it")
        if lowered in seen:
            raise RenderError(f"header {name!r}: given twice")
        seen.add(lowered)
        if len(value) > MAX_HEADER_VALUE_CHARS:
            raise RenderError(f"header {name!r}: value longer than {MAX_HEADER_VALUE_CHARS} characters")
        bad = next((i for i, c in enumerate(value) if not (0x20 <= ord(c) <= 0x7E or c == "\t")), None)
        if bad is not None:
            raise RenderError(f"header {name!r}: character {bad + 1} of the value is not printable ASCII")
    if "content-type" not in seen:
        raise RenderError("render() returned no Content-Type header")
    return headers, body


@runtime_checkable
class PayloadFormat(Protocol):
    """Turns an event into the body (and format-specific headers) of one HTTP POST.

    ``name`` is what hooks select (``vendor.version``, e.g. ``procore.v4``); it must be unique
    across all loaded plugins. ``render`` must be deterministic for the same event and context,
    must not do I/O and must return what ``check_rendered`` accepts. It runs in worker
    processes of its distribution (several at once, each loading the plugin afresh, so it must
    keep no state between renders) and with a time bound: a render that raises, breaks the
    contract, takes too long or even ends its process fails that one delivery (the error
    names the plugin), never the server or another hook.
    """

    name: str
    description: str
    content_type: str

    def render(self, event: Event, context: RenderContext) -> RenderedPayload: ...


@runtime_checkable
class StorageBackend(Protocol):
    """Opens a store for URLs of one scheme (``sqlite``, ``memory``, ``postgresql``).

    ``open(url)`` returns an async context manager; the store is usable inside it and closed
    on exit. The URL is the one given to ``tidings-server serve --store``.
    """

    scheme: str
    description: str

    def open(self, url: str) -> AbstractAsyncContextManager[Store]: ...


@runtime_checkable
class ResourceCatalog(Protocol):
    """Lists the resources events can be about, per scope, with their event types.

    Triggers and published events are validated against the union of all catalogs.
    """

    name: str

    def resources(self) -> Iterable[ResourceType]: ...


@hookspec
def tidings_payload_formats() -> list[PayloadFormat]:  # type: ignore[empty-body]
    """Return the payload formats this plugin provides.

    Called once at start-up. Results of all plugins are concatenated; two formats with the same
    ``name`` are a start-up error naming both providers. Every object must satisfy
    ``PayloadFormat``; ``CatalogService.ListPayloadFormats`` shows each with its ``description``,
    ``content_type`` and the distribution and version that provide it.
    """


@hookspec
def tidings_storage_backends() -> list[StorageBackend]:  # type: ignore[empty-body]
    """Return the storage backends this plugin provides, one per URL scheme.

    Called once at start-up. Results are concatenated; two backends for one scheme are a
    start-up error. The backend whose ``scheme`` matches the configured store URL is opened.
    """


@hookspec
def tidings_resource_catalogs() -> list[ResourceCatalog]:  # type: ignore[empty-body]
    """Return the resource catalogs this plugin provides.

    Called once at start-up. Catalogs are merged: a resource listed by several catalogs for the
    same scope supports the union of their event types.
    """


def hookspecs() -> list[Callable[[], object]]:
    """Every hook specification, in the order this module defines them."""
    module = sys.modules[__name__]
    found = [fn for name, fn in inspect.getmembers(module, inspect.isfunction) if name.startswith(f"{PROJECT}_")]
    return sorted(found, key=lambda fn: fn.__code__.co_firstlineno)


REFERENCE_TYPES = (PayloadFormat, RenderContext, RenderedPayload, StorageBackend, ResourceCatalog)


def _code(obj: object) -> str:
    """The source of ``obj`` without its docstring, decorators or type-checker comments."""
    source = textwrap.dedent(inspect.getsource(obj))  # type: ignore[arg-type]
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef | ast.ClassDef)
    lines = source.splitlines()
    doc = node.body[0]
    if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and doc.end_lineno is not None:
        end = doc.end_lineno + (doc.end_lineno < len(lines) and not lines[doc.end_lineno].strip())
        del lines[doc.lineno - 1 : end]
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = [line.split("  # type: ignore", 1)[0] for line in lines[first - 1 :]]
    if isinstance(node, ast.FunctionDef) and not lines[-1].startswith(" "):
        lines[-1] += " ..."  # a specification has no body but its docstring
    return "\n".join(lines).strip()


def reference() -> str:
    """The hook specifications, the interfaces they return and the render contract, as Markdown.

    docs/plugins.md carries this text verbatim between its reference markers; a test fails
    when the two differ, so the reference can never drift from the code.
    """
    out: list[str] = []
    for fn in hookspecs():
        out += [f"### `{fn.__name__}`", "", "```python", _code(fn), "```", "", inspect.getdoc(fn) or "", ""]
    for kind in REFERENCE_TYPES:
        out += [f"### `{kind.__name__}`", "", "```python", _code(kind), "```", "", inspect.getdoc(kind) or "", ""]
    limits = {
        "MAX_BODY_BYTES": MAX_BODY_BYTES,
        "MAX_HEADERS": MAX_HEADERS,
        "MAX_HEADER_VALUE_CHARS": MAX_HEADER_VALUE_CHARS,
        "RESERVED_HEADERS": ", ".join(sorted(RESERVED_HEADERS)),
    }
    signature = next(line for line in _code(check_rendered).splitlines() if line.startswith("def "))
    out += ["### `check_rendered`", "", "```python", signature + " ...", "```", ""]
    out += [inspect.getdoc(check_rendered) or "", ""]
    out += [f"- `{name}`: {value}" for name, value in limits.items()]
    return "\n".join(out).rstrip() + "\n"
