"""Worker processes for third-party payload formats: a small pool per plugin distribution, so a
format that calls ``os._exit``, crashes in a C extension, exhausts memory or hangs costs the
one render it was doing, never the server or another distribution's formats.

Workers are plain subprocesses (``render_worker``) spoken to over their stdin and stdout as trio
streams: the trio side waits on pipes, never in a thread, and a hung render is ended by killing
its process at the bound. multiprocessing was the other way; its pipes are blocking
connections (a thread per waiting render) and its start methods pickle more of the parent than
a worker needs. Workers start in the background with the server (``warm``), or at a
distribution's first render if that comes first; one that dies or is killed is replaced at the
next render.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import trio

from tidings_server.delivery import render_worker as wire
from tidings_server.domain.model import Event
from tidings_server.domain.texts import MAX_QUOTED_CHARS, bound_error
from tidings_server.plugins.spec import RenderContext, RenderedPayload, RenderError, check_rendered

log = logging.getLogger(__name__)
SETTINGS_PREFIX = "TIDINGS_"


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """How many workers each plugin distribution gets and what each may use."""

    workers: int = 2
    start_timeout: float = 30.0  # a cold interpreter importing a plugin, on a busy machine
    memory_limit: int = 1024 * 1024 * 1024  # address space of one worker (RLIMIT_AS); 0: none


class RenderFailed(Exception):
    """The render raised, broke the contract, ran past its bound or killed its worker: this
    delivery cannot be rendered (a permanent failure)."""


class RenderBusy(Exception):
    """No worker was free (or could start) in time: the format is busy, not broken; retry."""


class _WorkerGone(Exception):
    """The worker's pipe closed or it sent what the wire does not allow; it is stopped."""


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = bytearray()

    async def exchange(self, request: bytes | None) -> tuple[bytes, object, bytes]:
        """Send ``request`` (if any) and read one reply: (kind, metadata, body)."""
        assert self.process.stdin is not None
        if request is not None:
            try:
                await self.process.stdin.send_all(request)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise _WorkerGone(await self.gone()) from exc
        kind, meta_size, body_size = wire.REPLY_HEAD.unpack(await self._exactly(wire.REPLY_HEAD.size))
        if meta_size > wire.MAX_META_BYTES or body_size > wire.MAX_BODY:
            await self.close()
            raise _WorkerGone("sent a reply larger than the render contract allows")
        data = await self._exactly(meta_size)
        try:
            meta = json.loads(data)
        except ValueError:
            await self.close()
            raise _WorkerGone("sent a reply that is not JSON") from None
        return kind, meta, await self._exactly(body_size)

    async def _exactly(self, size: int) -> bytes:
        assert self.process.stdout is not None
        while len(self._buffer) < size:
            chunk = await self.process.stdout.receive_some(max(size - len(self._buffer), 65536))
            if not chunk:
                raise _WorkerGone(await self.gone())
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def gone(self) -> str:
        """Stop the process (if it is not already) and say how it ended."""
        await self.close()
        code = self.process.returncode
        if code is not None and code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    async def close(self) -> None:
        with trio.CancelScope(shield=True):  # a started kill is always reaped
            if self.process.returncode is None:
                self.process.kill()
            await self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    await stream.aclose()


class _Lane:
    """The workers of one plugin distribution."""

    def __init__(self, distribution: str, plugins: tuple[str, ...], config: PoolConfig) -> None:
        self.distribution = distribution
        self._plugins = plugins
        self._config = config
        self._slots = trio.Semaphore(config.workers)
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()

    async def render(
        self, name: str, event: Event, context: RenderContext, *, time_bound: float, wait: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        try:
            self._slots.acquire_nowait()  # the common case, without a cancel scope's cost
        except trio.WouldBlock:
            with trio.move_on_after(wait) as waiting:
                await self._slots.acquire()
            if waiting.cancelled_caught:
                raise RenderBusy(f"no render worker of {self.distribution} was free within {wait:g} s") from None
        try:  # the exchange below is the checkpoint; the slot is released whatever happens in it
            worker = self._idle.pop() if self._idle else await self._start()
            healthy = False
            try:
                with trio.move_on_after(time_bound) as bound:
                    kind, meta, body = await worker.exchange(wire.request(name, event, context))
                if bound.cancelled_caught:
                    raise RenderFailed(f"render() took longer than {time_bound:g} s; its worker was stopped")
                healthy = True
            except _WorkerGone as exc:
                log.warning("render worker of %s %s during a render of %s", self.distribution, exc, name)
                raise RenderFailed(f"its render worker {exc} during render()") from None
            finally:
                if healthy:
                    self._idle.append(worker)
                else:
                    self._live.discard(worker)
                    await worker.close()
        finally:
            self._slots.release()
        if kind == wire.REFUSED and isinstance(meta, dict):
            raise RenderFailed(bound_error(str(meta.get("error")), MAX_QUOTED_CHARS))
        if kind != wire.RENDERED or not isinstance(meta, list):
            raise RenderFailed("its render worker sent a reply the wire does not allow")
        try:  # checked again here: the worker runs foreign code, the reply must still hold
            return check_rendered(RenderedPayload(dict(meta), body))
        except (RenderError, TypeError, ValueError) as exc:
            raise RenderFailed(f"its render worker sent a reply the contract refuses: {exc}") from None

    async def _start(self) -> _Worker:
        command = [sys.executable, "-m", wire.__name__]
        if self._config.memory_limit:
            command += ["--memory-limit", str(self._config.memory_limit)]
        # The worker imports what the server imported: the same interpreter and the same path.
        # It needs none of the server's settings (keys and tokens among them): they stay here.
        env = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIX)}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        process = await trio.lowlevel.open_process(
            [*command, *self._plugins], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        worker = _Worker(process)
        try:
            with trio.move_on_after(self._config.start_timeout) as starting:
                kind, meta, _ = await worker.exchange(None)
        except _WorkerGone as exc:
            raise RenderFailed(f"its render worker {exc} while starting") from None
        except BaseException:
            await worker.close()
            raise
        if starting.cancelled_caught:
            await worker.close()
            raise RenderBusy(f"no render worker of {self.distribution} started within {self._config.start_timeout:g} s")
        if kind != wire.READY:
            await worker.close()
            error = meta.get("error") if isinstance(meta, dict) else meta
            raise RenderFailed(f"its render worker could not start: {bound_error(str(error), MAX_QUOTED_CHARS)}")
        self._live.add(worker)
        log.info("render worker started", extra={"distribution": self.distribution, "pid": process.pid})
        return worker

    async def warm(self) -> None:
        """Start the lane's workers ahead of its first renders (a cold start is a second or two
        that a burst of deliveries would otherwise wait through); a failure is left for the
        render that next needs a worker to report."""
        for _ in range(self._config.workers):
            async with self._slots:
                if len(self._live) >= self._config.workers:
                    return
                try:
                    self._idle.append(await self._start())
                except Exception as exc:  # the render that needs a worker will say why, per delivery
                    log.warning("render worker of %s did not start: %s", self.distribution, exc)
                    return

    async def aclose(self) -> None:
        for worker in list(self._live):
            await worker.close()
        self._live.clear()
        self._idle.clear()


class RenderPool:
    """Renders the formats of the distributions it was given, each distribution in its own
    workers; ``async with`` it so every worker is stopped with the server."""

    def __init__(self, formats: Mapping[str, tuple[str, Iterable[str]]], config: PoolConfig = PoolConfig()) -> None:
        """``formats`` maps a format name to its distribution and that distribution's loaded
        plugins (the entry points a worker loads)."""
        self.config = config
        lanes: dict[str, _Lane] = {}
        self._lanes: dict[str, _Lane] = {}
        for name, (distribution, plugins) in formats.items():
            lane = lanes.get(distribution)
            if lane is None:
                lane = lanes[distribution] = _Lane(distribution, tuple(sorted(plugins)), config)
            self._lanes[name] = lane
        self._all = list(lanes.values())

    def serves(self, name: str) -> bool:
        return name in self._lanes

    async def warm(self) -> None:
        """Start every distribution's workers, one distribution after another (so a server's
        start-up does not spawn them all at once on a small machine)."""
        for lane in self._all:
            await lane.warm()

    async def render(
        self, name: str, event: Event, context: RenderContext, *, time_bound: float, wait: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        """The checked headers and body of one render in a worker of ``name``'s distribution.

        ``wait`` bounds the wait for a free worker (RenderBusy when it runs out) and ``time_bound``
        the render call alone (RenderFailed, and the worker is killed); starting a worker has its
        own bound. Raises RenderFailed for anything the render did wrong.
        """
        return await self._lanes[name].render(name, event, context, time_bound=time_bound, wait=wait)

    async def __aenter__(self) -> RenderPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for lane in self._all:
            await lane.aclose()
