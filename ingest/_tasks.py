"""A task scope: an `asyncio.TaskGroup` whose tasks are cancelled when the scope closes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


class TaskScope:
    """Owns long-running tasks: every task is named, and closing the scope cancels and awaits
    them all (an error in one cancels the others and surfaces, as in a TaskGroup)."""

    def __init__(self) -> None:
        self._tg = asyncio.TaskGroup()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        await self._tg.__aenter__()
        return self

    async def enter(self, manager: AbstractAsyncContextManager[T]) -> T:
        """Enter an async context manager for the scope's lifetime (closed after the tasks)."""
        return await self._stack.enter_async_context(manager)

    def start(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = self._tg.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()
        try:
            await self._tg.__aexit__(et, e, tb)
        finally:
            await self._stack.aclose()
