"""A broadcast that the store changed, for watchers that then read what changed from the store.

Watchers never receive the changes themselves, only the news that there are some, so a slow
watcher can never make the server buffer on its behalf. A waiter takes ``token()`` before it
reads the store and waits on that token afterwards: a change committed in between has
already set it, so it is never missed.
"""

from __future__ import annotations

import trio

from tidings_server.domain.errors import Unavailable


class Pulse:
    """Fired after every committed change; closed at shutdown so every waiter ends at once."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._closed = False

    def fire(self) -> None:
        self._event.set()
        self._event = trio.Event()

    def token(self) -> trio.Event:
        """The event the next ``fire`` sets."""
        if self._closed:
            raise Unavailable("the server is shutting down; resume the watch elsewhere or later")
        return self._event

    def close(self) -> None:
        self._closed = True
        self._event.set()

    async def wait(self, token: trio.Event) -> None:
        """Wait until ``token`` is set; raises once closed. Callers bound the wait themselves."""
        await token.wait()
        if self._closed:
            raise Unavailable("the server is shutting down; resume the watch elsewhere or later")
