"""WebSocket plumbing shared by the live and supervisor streams: JSON frames, heartbeats and
running a connection's loops with one lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

import orjson
from fastapi import WebSocket


async def send(ws: WebSocket, message: dict[str, Any]) -> None:
    await ws.send_text(orjson.dumps(message).decode())


def error(detail: str, code: str) -> dict[str, Any]:
    return {"type": "error", "detail": detail, "code": code}


async def receive(ws: WebSocket) -> dict[str, Any] | None:
    """The next JSON object from the client; None (after telling it why) for anything else."""
    text = await ws.receive_text()
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        await send(ws, error("not JSON", "bad_message"))
        return None
    if not isinstance(message, dict):
        await send(ws, error("a message is a JSON object", "bad_message"))
        return None
    return message


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Heartbeat:
    """Pings every ``period_s``; closes a client that answered none for two periods."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self._last_pong = time.monotonic()

    def pong(self) -> None:
        self._last_pong = time.monotonic()

    async def run(self, ws: WebSocket) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            if time.monotonic() - self._last_pong > 2 * self.period_s:
                await ws.close(code=1001, reason="no heartbeat")
                return
            await send(ws, {"type": "ping", "ts_ms": now_ms()})


async def first_to_finish(*coros: Coroutine[Any, Any, Any]) -> None:
    """Run a connection's loops; when one ends (close, error), cancel and await the others."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
