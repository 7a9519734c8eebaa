"""A render worker process, and the wire both its ends speak: the engine's render pool starts
``python -m tidings_server.delivery.render_worker PLUGIN…``, which loads those plugins exactly
as the server did and renders its requests one after another, so a format that exits, crashes,
hangs or exhausts memory takes down this process only.

Frames are length-prefixed, and the server may write several requests at once (a batch: one
pipe write and one wake-up of this process for many renders). A request's head gives its
length and the ``time.monotonic()`` by which its render must have started; its payload is a
pickle of plain values only (the format name, the event's fields as a tuple, the context's):
building them is a fraction of what pickling the dataclasses themselves costs, on both ends,
and only the worker unpickles.
A request reached after its start-by time is answered BUSY unrendered: its wait for a worker
is over. Each reply is written as soon as its render ends (the server times each render from
the previous reply) and is never unpickled: a 9-byte head (kind, metadata length, body
length), JSON metadata, then the body's raw bytes, so the server reads a bounded amount of
plain data from a process that runs foreign code.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import signal
import struct
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import fields
from typing import BinaryIO

from tidings_server.domain.model import Event, EventMetadata, RelatedResource
from tidings_server.domain.texts import MAX_QUOTED_CHARS, bound_error
from tidings_server.plugins.spec import MAX_BODY_BYTES, PayloadFormat, RenderContext, RenderError, check_rendered

REQUEST_HEAD = struct.Struct(">Id")  # length, start-by time (time.monotonic())
REPLY_HEAD = struct.Struct(">cII")
MAX_META_BYTES = 256 * 1024  # 16 headers of 1,024 characters, or a bounded error, fit with room
MAX_BODY = MAX_BODY_BYTES
READY, FAILED_TO_START, RENDERED, REFUSED, BUSY = b"S", b"F", b"R", b"E", b"B"
NICENESS = 10


def render_checked(fmt: PayloadFormat, event: Event, context: RenderContext) -> tuple[list[tuple[str, str]], bytes]:
    """Render and check against the contract; RenderError says what went wrong.

    Raised exceptions become RenderError here, their tracebacks dropped, so nothing keeps the
    frames of a rejected render (and the body they hold) alive once its error text is made.
    """
    try:
        rendered = fmt.render(event, context)
    except BaseException as exc:  # SystemExit and the like too: in a render, always the plugin's
        error = f"render() raised {bound_error(repr(exc), MAX_QUOTED_CHARS)}"
        traceback.clear_frames(exc.__traceback__)
        exc.__traceback__ = None
        del exc
    else:
        try:
            return check_rendered(rendered)
        except RenderError as exc:
            error = str(exc)
            exc.__traceback__ = None
            del exc
        except Exception as exc:  # a hostile Mapping's items() is plugin code as well
            error = f"render() raised {bound_error(repr(exc), MAX_QUOTED_CHARS)}"
            traceback.clear_frames(exc.__traceback__)
            exc.__traceback__ = None
            del exc
        finally:
            del rendered
    raise RenderError(error)


def reply(kind: bytes, meta: object, body: bytes = b"") -> bytes:
    data = json.dumps(meta, separators=(",", ":")).encode()
    return REPLY_HEAD.pack(kind, len(data), len(body)) + data + body


_EVENT_FIELDS = tuple(f.name for f in fields(Event))
_METADATA_FIELDS = tuple(f.name for f in fields(EventMetadata))
_METADATA_AT = _EVENT_FIELDS.index("metadata")
_RELATED_AT = _EVENT_FIELDS.index("related_resources")


def encode_event(event: Event) -> tuple[object, ...]:
    """``event`` as a tuple of plain values (its nested dataclasses as tuples too)."""
    values: list[object] = [getattr(event, name) for name in _EVENT_FIELDS]
    values[_METADATA_AT] = tuple(getattr(event.metadata, name) for name in _METADATA_FIELDS)
    values[_RELATED_AT] = tuple((r.id, r.name) for r in event.related_resources)
    return tuple(values)


def decode_event(values: Sequence[object]) -> Event:
    fields_ = list(values)
    fields_[_METADATA_AT] = EventMetadata(*fields_[_METADATA_AT])  # type: ignore[misc]
    fields_[_RELATED_AT] = tuple(RelatedResource(*r) for r in fields_[_RELATED_AT])  # type: ignore[attr-defined]
    return Event(*fields_)  # type: ignore[arg-type]


def request(format_name: str, event: Event, context: RenderContext) -> bytes:
    """A request's payload, to send in a ``frame``."""
    values = (format_name, encode_event(event), context.hook_name, context.payload_format, context.test)
    return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)


def frame(payload: bytes, start_by: float = float("inf")) -> bytes:
    """A request as sent; ``start_by`` is the ``time.monotonic()`` after which it is not rendered."""
    return REQUEST_HEAD.pack(len(payload), start_by) + payload


def _serve(requests: int, replies: BinaryIO, formats: dict[str, PayloadFormat]) -> None:
    """Render requests in order, each reply written as soon as its render ends. (Holding a
    batch's replies for one write measured no better end to end, docs/performance.md.)"""
    buffer = bytearray()
    while True:
        if len(buffer) < REQUEST_HEAD.size or len(buffer) < REQUEST_HEAD.size + REQUEST_HEAD.unpack_from(buffer)[0]:
            chunk = os.read(requests, 1 << 16)
            if not chunk:
                return  # the server closed the pipe (or is gone): nothing more to do
            buffer += chunk
            continue
        size, start_by = REQUEST_HEAD.unpack_from(buffer)
        data = bytes(buffer[REQUEST_HEAD.size : REQUEST_HEAD.size + size])
        del buffer[: REQUEST_HEAD.size + size]
        name, event, hook_name, payload_format, test = pickle.loads(data)  # noqa: S301 - written by the server
        del data
        fmt = formats.get(name)
        if fmt is None:
            out = reply(REFUSED, {"error": "is not provided by this worker's plugins"})
        elif time.monotonic() > start_by:
            out = reply(BUSY, {})
        else:
            try:
                context = RenderContext(hook_name, payload_format, test)
                headers, body = render_checked(fmt, decode_event(event), context)
            except RenderError as exc:
                out = reply(REFUSED, {"error": str(exc)})
            else:
                out = reply(RENDERED, headers, body)
                del body
        replies.write(out)
        replies.flush()
        del out


def main(argv: Sequence[str]) -> int:
    """``render_worker [--memory-limit BYTES] PLUGIN…``: serve renders on stdin/stdout until EOF."""
    args = list(argv)
    limit = 0
    if args[:1] == ["--memory-limit"]:
        limit, args = int(args[1]), args[2:]
    # The pipes are ours alone: a plugin that prints writes to stderr, and reads nothing.
    replies = os.fdopen(os.dup(1), "wb")
    requests = os.dup(0)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the server ends us
    os.nice(NICENESS)  # a format that burns CPU must not starve the server's own thread
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from tidings_server.plugins.manager import Plugins  # after the limit: plugins import under it

    try:
        plugins = Plugins.load(only=args)
        failed = [f"plugin {i.name} failed to load: {i.error}" for i in plugins.infos if i.error]
        if failed:
            raise RuntimeError("; ".join(failed))
    except Exception as exc:
        replies.write(reply(FAILED_TO_START, {"error": bound_error(str(exc))}))
        replies.flush()
        return 1
    replies.write(reply(READY, sorted(plugins.payload_formats)))
    replies.flush()
    _serve(requests, replies, plugins.payload_formats)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
