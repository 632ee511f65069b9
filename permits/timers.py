"""The permit scheduler: terminates permits at expiry, flags those due within 30 minutes and
continuous-monitoring permits whose gas readings are overdue.

The work of one pass is a ``tick(now)`` callable (the service's), so tests drive it with a
chosen clock; the scheduler only decides when to call it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import psycopg

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    """What one pass did (permit numbers)."""

    expired: list[str] = field(default_factory=list)
    due_soon: list[str] = field(default_factory=list)
    gas_overdue: list[str] = field(default_factory=list)
    linked_ended: list[str] = field(default_factory=list)


Tick = Callable[[dt.datetime], Awaitable[TickReport]]


class PermitScheduler:
    """Calls ``tick(clock())`` every ``interval_s``; an async context manager owning its task.

    A failed pass (database away) is logged and retried at the next interval: the scheduler
    must outlive outages, since expiry is a safety action.
    """

    def __init__(self, *, tick: Tick, clock: Callable[[], dt.datetime], interval_s: float) -> None:
        self._tick = tick
        self._clock = clock
        self._interval_s = interval_s
        self._tg: asyncio.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.failures = 0
        self.last: TickReport | None = None

    async def __aenter__(self) -> Self:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._task = self._tg.create_task(self._run(), name="permit-scheduler")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        assert self._task is not None
        self._task.cancel()
        await self._tg.__aexit__(et, e, tb)

    async def _run(self) -> None:
        while True:
            try:
                self.last = await self._tick(self._clock())
                self.passes += 1
                if self.last.expired or self.last.due_soon or self.last.gas_overdue:
                    log.info(
                        "permit scheduler pass: expired %s, due soon %s, gas overdue %s",
                        self.last.expired,
                        self.last.due_soon,
                        self.last.gas_overdue,
                    )
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self.failures += 1
                log.warning("permit scheduler pass failed: %s", exc)
            await asyncio.sleep(self._interval_s)
