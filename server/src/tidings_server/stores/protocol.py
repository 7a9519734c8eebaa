"""The Store interface: what the core needs from persistence, and the rules every backend keeps.

Every method is atomic: it either applies entirely or raises and changes nothing. Errors are
the domain's (``NotFound``, ``AlreadyExists``); anything else is a defect of the backend.
Lists are ordered by name (plain string order) and resume strictly after ``after``.
Times come from the caller, never from the backend's clock, so tests can run in virtual time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from tidings_server.domain.model import Hook, Trigger
from tidings_server.domain.names import Parent


class Store(Protocol):
    async def create_hook(self, hook: Hook) -> None:
        """Insert ``hook``. Raises ``AlreadyExists`` if its name is taken."""

    async def get_hook(self, name: str) -> Hook:
        """Return the hook called ``name``. Raises ``NotFound``."""
        ...

    async def list_hooks(self, parent: Parent, *, after: str | None, limit: int) -> list[Hook]:
        """Return up to ``limit`` hooks directly under ``parent`` with names > ``after``.

        ``parent.any_project`` selects the project hooks of every project of the company.
        """
        ...

    async def update_hook(self, name: str, change: Callable[[Hook], Hook]) -> Hook:
        """Replace the hook with ``change(current)`` atomically and return the new hook.

        ``change`` is a pure function; if it raises, nothing is written and the error
        propagates. It must not change the name. Raises ``NotFound``.
        """
        ...

    async def delete_hook(self, name: str) -> None:
        """Delete the hook and all its triggers. Raises ``NotFound``."""

    async def add_triggers(self, hook_name: str, triggers: Sequence[Trigger]) -> list[Trigger]:
        """Add triggers to a hook, all or none, and return them in input order.

        A trigger whose name the hook already has is kept as stored (its original
        ``create_time`` is returned). Duplicates within ``triggers`` are allowed.
        Raises ``NotFound`` if the hook does not exist.
        """
        ...

    async def delete_triggers(self, hook_name: str, names: Sequence[str], *, allow_missing: bool) -> None:
        """Delete triggers of a hook, all or none.

        Raises ``NotFound`` if the hook does not exist, or (unless ``allow_missing``) naming the
        first trigger in ``names`` the hook does not have.
        """

    async def list_triggers(self, hook_name: str, *, after: str | None, limit: int) -> list[Trigger]:
        """Return up to ``limit`` triggers of the hook with names > ``after``. Raises ``NotFound``."""
        ...
