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
import time
from collections import deque
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field

import trio

from tidings_server.delivery import render_worker as wire
from tidings_server.domain.model import Event
from tidings_server.domain.texts import MAX_QUOTED_CHARS, bound_error
from tidings_server.plugins.spec import RenderContext, RenderedPayload, RenderError, check_rendered

log = logging.getLogger(__name__)
SETTINGS_PREFIX = "TIDINGS_"
MAX_BATCH = 16  # renders written to a worker at once; more would only queue inside it
# A batch is sized to take about this long, from the lane's recent time per render, so a slow
# format's renders are spread over its workers instead of queueing behind each other in one.
BATCH_SPAN = 0.005


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

    async def send(self, requests: bytes) -> None:
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send_all(requests)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _WorkerGone(await self.gone()) from exc

    async def receive(self) -> tuple[bytes, object, bytes]:
        """One reply: (kind, metadata, body)."""
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


@dataclass(eq=False, slots=True)
class _Job:
    """One render asked of a lane: queued, then sent in a batch, then answered or failed."""

    request: bytes
    time_bound: float
    start_by: float  # trio time past which it must not be taken for a worker
    waits: float = 0.0  # what was left of its wait when taken (the worker enforces it from then)
    alone: bool = False  # in a batch that failed unanswered: sent on its own, to find the culprit
    done: trio.Event = field(default_factory=trio.Event)
    sent: bool = False
    reply: tuple[bytes, object, bytes] | None = None
    failure: Exception | None = None

    def finish(self, reply: tuple[bytes, object, bytes] | None = None, failure: Exception | None = None) -> None:
        self.reply, self.failure = reply, failure
        self.done.set()


class _Lane:
    """The workers of one plugin distribution, and the queue of renders they share.

    A render that finds nothing queued and a worker idle exchanges with it itself. Otherwise it
    queues, and each worker has a pump task: when the worker is idle and renders are queued, the pump writes
    up to ``MAX_BATCH`` of them to it at once and reads the replies as they come, so under load
    one pipe write, one wake-up of each side and a few reads serve many renders (one round trip
    per render cost the server's core about 100 µs). Each render is still bounded alone: it is
    timed from the reply before it (the worker renders them in order). When a render runs past
    its bound or its worker dies, the one unanswered render fails; if several are unanswered,
    each is sent again on its own, so only the culprit fails and the others render (the pool
    does not rely on the worker having written every finished render's reply).
    """

    def __init__(self, distribution: str, plugins: tuple[str, ...], config: PoolConfig) -> None:
        self.distribution = distribution
        self._plugins = plugins
        self._config = config
        self._queue: deque[_Job] = deque()
        self._parked = trio.lowlevel.ParkingLot()
        self._workers: list[_Worker | None] = [None] * config.workers
        self._starting = [trio.Lock() for _ in range(config.workers)]
        self._busy = [False] * config.workers  # its pump or a direct render is using the worker
        self._per_render = BATCH_SPAN  # seconds, a moving average; one render a batch until known

    async def render(
        self, name: str, event: Event, context: RenderContext, *, time_bound: float, wait: float
    ) -> tuple[list[tuple[str, str]], bytes]:
        busy = f"no render worker of {self.distribution} was free within {wait:g} s"
        job = _Job(wire.request(name, event, context), time_bound, trio.current_time() + wait)
        slot = None if self._queue else self._idle_slot()
        if slot is not None:
            await self._direct(slot, job)
        else:
            await self._queued(job, busy)
        return self._outcome(job, busy)

    def _idle_slot(self) -> int | None:
        for slot, worker in enumerate(self._workers):
            if worker is not None and not self._busy[slot]:
                return slot
        return None

    async def _direct(self, slot: int, job: _Job) -> None:
        """Nothing queued and a worker idle: this task exchanges with it itself, as a batch of
        one (the pump's hop, two scheduler rounds, is what a lone render would pay)."""
        worker = self._workers[slot]
        assert worker is not None
        job.sent, job.waits = True, job.start_by - trio.current_time()
        self._busy[slot] = True
        try:
            await self._serve(slot, worker, [job])
        except BaseException:  # cancelled mid-exchange: the worker's pipe state is unknown
            if not job.done.is_set():
                self._workers[slot] = None
                await worker.close()
            raise
        finally:
            self._busy[slot] = False
            if self._queue:
                self._parked.unpark_all()

    async def _queued(self, job: _Job, busy: str) -> None:
        self._queue.append(job)
        self._parked.unpark()
        try:
            with trio.move_on_at(job.start_by):
                await job.done.wait()
            if not job.done.is_set():
                if not job.sent:
                    raise RenderBusy(busy)
                await job.done.wait()  # sent: its pump ends it within its bound
        finally:
            if not job.sent and not job.done.is_set():
                self._queue.remove(job)

    @staticmethod
    def _outcome(job: _Job, busy: str) -> tuple[list[tuple[str, str]], bytes]:
        if job.failure is not None:
            raise job.failure
        assert job.reply is not None
        kind, meta, body = job.reply
        if kind == wire.BUSY:
            raise RenderBusy(busy)
        if kind == wire.REFUSED and isinstance(meta, dict):
            raise RenderFailed(bound_error(str(meta.get("error")), MAX_QUOTED_CHARS))
        if kind != wire.RENDERED or not isinstance(meta, list):
            raise RenderFailed("its render worker sent a reply the wire does not allow")
        try:  # checked again here: the worker runs foreign code, the reply must still hold
            return check_rendered(RenderedPayload(dict(meta), body))
        except (RenderError, TypeError, ValueError) as exc:
            raise RenderFailed(f"its render worker sent a reply the contract refuses: {exc}") from None

    def _batch(self) -> list[_Job]:
        """The next queued renders for one worker, marked sent; those whose wait ran out are told so."""
        now = trio.current_time()
        batch: list[_Job] = []
        share = -(-len(self._queue) // len(self._workers))  # the rest is for the other workers
        size = max(1, min(MAX_BATCH, share, int(BATCH_SPAN / self._per_render)))
        while self._queue and len(batch) < size:
            if self._queue[0].alone and batch:
                break
            job = self._queue.popleft()
            if now > job.start_by:
                job.finish(reply=(wire.BUSY, {}, b""))
            else:
                job.sent, job.waits = True, job.start_by - now
                batch.append(job)
                if job.alone:
                    break
        return batch

    async def pump(self, slot: int) -> None:
        """Serve the queue with worker ``slot`` (started when first needed) until cancelled."""
        batch: list[_Job] = []
        try:
            while True:
                while not self._queue or self._busy[slot]:
                    await self._parked.park()
                self._busy[slot] = True
                try:
                    batch = self._batch()
                    if batch and (worker := await self._worker(slot, batch)) is not None:
                        await self._serve(slot, worker, batch)
                finally:
                    self._busy[slot] = False
        finally:  # the pool is closing: nothing sent is left waiting
            for job in batch:
                if not job.done.is_set():
                    job.finish(failure=RenderBusy("the server is stopping"))

    async def _worker(self, slot: int, batch: list[_Job]) -> _Worker | None:
        """Worker ``slot``, started if need be (a start has its own bound, apart from the
        renders' wait, as a free worker was found); None, and ``batch`` told why, if it fails."""
        if (worker := self._workers[slot]) is not None:
            return worker  # the common case, without the lock's checkpoint (a scheduler round)
        async with self._starting[slot]:
            if self._workers[slot] is None:
                try:
                    self._workers[slot] = await self._start()
                except (RenderFailed, RenderBusy) as exc:
                    for job in batch:
                        job.finish(failure=exc)
                    return None
            return self._workers[slot]

    async def _serve(self, slot: int, worker: _Worker, batch: list[_Job]) -> None:
        with suppress(_WorkerGone):  # the first render's read below says how the worker ended
            now = time.monotonic()
            await worker.send(b"".join(wire.frame(job.request, now + job.waits) for job in batch))
        started = trio.current_time()
        for at, job in enumerate(batch):
            failure: RenderFailed | None = None
            try:
                with trio.move_on_at(started + job.time_bound) as bound:
                    reply = await worker.receive()
                if bound.cancelled_caught:
                    await worker.close()
                    failure = RenderFailed(f"render() took longer than {job.time_bound:g} s; its worker was stopped")
            except _WorkerGone as exc:
                log.warning("render worker of %s %s during a render", self.distribution, exc)
                failure = RenderFailed(f"its render worker {exc} during render()")
            if failure is not None:
                self._workers[slot] = None
                unanswered = batch[at:]
                if len(unanswered) == 1:
                    job.finish(failure=failure)
                    return
                # Any of these may be the culprit as far as the pool can tell (the worker runs
                # foreign code): each is sent again on its own (a render has no side effects),
                # and only the one that fails alone is failed.
                for rest in reversed(unanswered):
                    rest.sent, rest.alone = False, True
                    self._queue.appendleft(rest)
                self._parked.unpark_all()
                return
            job.finish(reply=reply)
            now = trio.current_time()
            self._per_render += (now - started - self._per_render) * 0.2
            started = now

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
                kind, meta, _ = await worker.receive()
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
        log.info("render worker started", extra={"distribution": self.distribution, "pid": process.pid})
        return worker

    async def warm(self) -> None:
        """Start the lane's workers ahead of its first renders (a cold start is a second or two
        that a burst of deliveries would otherwise wait through); a failure is left for the
        render that next needs a worker to report."""
        for slot in range(self._config.workers):
            async with self._starting[slot]:
                if self._workers[slot] is not None:
                    continue
                try:
                    self._workers[slot] = await self._start()
                except Exception as exc:  # the render that needs a worker will say why, per delivery
                    log.warning("render worker of %s did not start: %s", self.distribution, exc)
                    return

    async def aclose(self) -> None:
        while self._queue:
            self._queue.popleft().finish(failure=RenderBusy("the server is stopping"))
        for slot, worker in enumerate(self._workers):
            if worker is not None:
                await worker.close()
            self._workers[slot] = None


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
        self._nursery_manager = trio.open_nursery()
        nursery = await self._nursery_manager.__aenter__()
        self._pumps = nursery.cancel_scope
        for lane in self._all:
            for slot in range(self.config.workers):
                nursery.start_soon(lane.pump, slot)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._pumps.cancel()
        try:
            await self._nursery_manager.__aexit__(None, None, None)
        finally:
            for lane in self._all:
                await lane.aclose()
