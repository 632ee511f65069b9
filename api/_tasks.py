"""A task scope: an `asyncio.TaskGroup` whose tasks are cancelled when the scope closes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self


class TaskScope:
    """Owns long-running tasks: every task is named, and closing the scope cancels and awaits
    them all (an error in one cancels the others and surfaces, as in a TaskGroup)."""

    def __init__(self) -> None:
        self._tg = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Self:
        await self._tg.__aenter__()
        return self

    def start(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = self._tg.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await self._tg.__aexit__(et, e, tb)
