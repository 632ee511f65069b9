"""Lanes: decisions carried out in order per permit, permits in parallel.

The detectors hand decisions over and go on with the next batch; each permit (or, without
one, each device) has its own lane, so one evacuation never waits behind another permit's
work, nor the ingest behind either, while a permit's own decisions keep their order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]


class Lanes:
    """Runs jobs in order per key, keys concurrently. An async context manager: on exit the
    queued jobs get ``drain_s`` to finish, then the rest is cancelled."""

    def __init__(self, *, drain_s: float = 10.0) -> None:
        self._drain_s = drain_s
        self._queues: dict[str, deque[Job]] = {}
        self._tg = asyncio.TaskGroup()
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = False
        self._running: set[asyncio.Task[None]] = set()
        #: Lanes still busy when the drain time ran out on exit (their jobs were cancelled).
        self.abandoned = 0

    async def __aenter__(self) -> Self:
        await self._tg.__aenter__()
        self._open = True
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._open = False
        try:
            async with asyncio.timeout(self._drain_s):
                await self._idle.wait()
        except TimeoutError:
            self.abandoned = len(self._queues)
            log.warning("enforcement lanes closed with %d lane(s) still busy", self.abandoned)
        finally:
            for task in list(self._running):
                task.cancel()
            await self._tg.__aexit__(et, e, tb)

    @property
    def busy(self) -> int:
        """Lanes with work queued or running."""
        return len(self._queues)

    async def wait_idle(self) -> None:
        """Until every queued job has run."""
        await self._idle.wait()

    def submit(self, key: str, job: Job) -> None:
        """Queue ``job`` on lane ``key`` (after the lane's earlier jobs)."""
        if not self._open:
            raise RuntimeError("lanes are closed")
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(job)
            return
        self._queues[key] = deque([job])
        self._idle.clear()
        task = self._tg.create_task(self._run(key), name=f"enforcement-lane-{key}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                job = queue.popleft()
                try:
                    await job()
                except Exception:  # one failed decision must not stop the permit's next
                    log.exception("enforcement job on lane %s failed", key)
        finally:
            del self._queues[key]
            if not self._queues:
                self._idle.set()
