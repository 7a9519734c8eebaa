"""Domain errors: each kind maps to exactly one gRPC status in the adapter's table."""

from __future__ import annotations


class TidingsError(Exception):
    """Base of every error the domain raises on purpose; the message is shown to callers."""


class InvalidArgument(TidingsError):
    """The request itself is wrong; retrying it unchanged can never succeed."""


class NotFound(TidingsError):
    """A named resource does not exist."""


class AlreadyExists(TidingsError):
    """A resource with the requested name exists already."""


class FailedPrecondition(TidingsError):
    """The request is well formed but the resource's state forbids it."""


class Unavailable(TidingsError):
    """The server cannot serve now (shutting down, store unreachable); retry later."""


class OutOfRange(TidingsError):
    """A position (such as a resume token) lies outside what is retained."""


class DataLoss(TidingsError):
    """Stored data is corrupt: it was altered outside tidings (a sealed secret that does not open)."""


class ResourceExhausted(TidingsError):
    """The caller used more than its share (e.g. a watcher too slow to keep up)."""
