"""`/ws/supervisor`: pushes to a supervisor's (or watcher's) phone, with acknowledgement.

Protocol (JSON text frames):

- server → client: ``{"type": "hello", "user_id"}`` after authentication, then every push
  still unacknowledged (replay), then live ``{"type": "push", ...}`` frames and
  ``{"type": "ping", "ts_ms"}`` heartbeats.
- client → server: ``{"type": "ack", "push_id"}``, ``{"type": "seen", "push_id"}``,
  ``{"type": "pong"}``. Replies: ``{"type": "acked", "push_id"}`` or
  ``{"type": "error", "detail", "code"}``.

A client that answers no ping for two heartbeat periods is dropped; a client too slow to
drain its bounded queue is dropped too (it gets everything again on reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import WebSocket
from starlette.websockets import WebSocketState

from api import _ws
from api._ws import Heartbeat
from permits.enforcement.pushes import PushNotFound, PushService

log = logging.getLogger(__name__)


class PushHub:
    """Live connections per user; `deliver` never blocks the caller.

    A message is encoded once however many connections the user has. The replay of a new
    connection (a database query) waits for one of ``replay_concurrency`` places, so that a
    reconnect storm of every phone at once never takes the database pool from the ingest."""

    def __init__(self, *, queue_size: int = 256, replay_concurrency: int = 2) -> None:
        self._queue_size = queue_size
        self._clients: dict[str, set[asyncio.Queue[str | None]]] = defaultdict(set)
        self.replay_gate = asyncio.Semaphore(replay_concurrency)

    def deliver(self, user_id: str, message: dict[str, Any]) -> None:
        queues = self._clients.get(user_id)
        if not queues:
            return
        text = orjson.dumps(message).decode()
        for queue in list(queues):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                log.warning("dropping a slow supervisor client of %s", user_id)
                self._drop(queue)

    def connected(self, user_id: str) -> int:
        return len(self._clients.get(user_id, ()))

    @contextlib.asynccontextmanager
    async def connect(self, user_id: str) -> AsyncIterator[asyncio.Queue[str | None]]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(self._queue_size)
        self._clients[user_id].add(queue)
        try:
            yield queue
        finally:
            self._clients[user_id].discard(queue)
            if not self._clients[user_id]:
                del self._clients[user_id]

    @staticmethod
    def _drop(queue: asyncio.Queue[str | None]) -> None:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)  # tells the sender to close the connection


async def serve_supervisor(
    ws: WebSocket,
    *,
    user_id: str,
    hub: PushHub,
    pushes: PushService,
    heartbeat_s: float = 15.0,
) -> None:
    """Run one authenticated supervisor connection until it closes."""
    if ws.application_state == WebSocketState.CONNECTING:
        await ws.accept()
    async with hub.connect(user_id) as queue:
        async with hub.replay_gate:  # read before the hello: once it is out, the DB is done
            pending = await pushes.pending_for(user_id)
        await _ws.send(ws, {"type": "hello", "user_id": user_id})
        for push in pending:
            await _ws.send(ws, push.to_json())
        beat = Heartbeat(heartbeat_s)

        async def receive() -> None:
            while True:
                message = await _ws.receive(ws)
                if message is None:
                    continue
                kind = message.get("type")
                if kind == "pong":
                    beat.pong()
                elif kind in ("ack", "seen"):
                    await _handle_ack(ws, pushes, user_id, kind, message.get("push_id"))
                else:
                    await _ws.send(ws, _ws.error(f"unknown message type {kind!r}", "bad_message"))

        async def send() -> None:
            while (text := await queue.get()) is not None:
                await ws.send_text(text)
            await ws.close(code=1013, reason="too slow")

        await _ws.first_to_finish(receive(), send(), beat.run(ws))


async def _handle_ack(
    ws: WebSocket, pushes: PushService, user_id: str, kind: str, raw: Any
) -> None:
    try:
        push_id = uuid.UUID(str(raw))
    except ValueError:
        await _ws.send(ws, _ws.error("push_id is not a UUID", "bad_message"))
        return
    try:
        if kind == "ack":
            push = await pushes.ack(push_id, user_id)
            await _ws.send(ws, {"type": "acked", "push_id": str(push.push_id)})
        else:
            await pushes.seen(push_id, user_id)
    except PushNotFound as exc:
        await _ws.send(ws, _ws.error(str(exc), "not_found"))
