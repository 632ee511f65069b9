"""Supervisor pushes over a real WebSocket: replay, acknowledgement, escalation, heartbeat."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import ClientConnection, connect

from api.embedded import free_port
from api.settings import Settings
from api.storage import open_pool
from api.ws_supervisor import PushHub, serve_supervisor
from permits.enforcement.pushes import PushService

CHAIN = ("watcher", "supervisor", "safety", "control_room")


@dataclass
class Directory:
    """Who holds which role (the real resolver reads the users and permits tables)."""

    people: dict[str, list[str]]

    async def users_for(
        self,
        conn: psycopg.AsyncConnection[Any],
        *,
        role: str,
        site_id: str,
        permit_id: uuid.UUID | None,
    ) -> list[str]:
        return self.people.get(role, [])


@dataclass
class Stack:
    pushes: PushService
    hub: PushHub
    url: str


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    assert settings.database.url
    hub = PushHub(queue_size=8)
    people = Directory({"watcher": ["wang"], "supervisor": ["li", "zhao"], "control_room": ["cr"]})
    async with (
        open_pool(settings.database, settings.database.url) as pool,
        PushService(pool=pool, recipients=people, outbox=hub, tick_s=0.05) as pushes,
    ):
        app = FastAPI()

        @app.websocket("/ws/supervisor")
        async def ws_route(ws: WebSocket) -> None:
            await serve_supervisor(
                ws, user_id=ws.query_params["user"], hub=hub, pushes=pushes, heartbeat_s=0.3
            )

        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
        server.capture_signals = __import__("contextlib").nullcontext  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        yield Stack(pushes, hub, f"ws://127.0.0.1:{port}/ws/supervisor")
        server.should_exit = True
        await task


async def recv(ws: ClientConnection, kind: str = "push", timeout_s: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            msg: dict[str, Any] = orjson.loads(await ws.recv())
            if msg["type"] == "ping":
                await ws.send(orjson.dumps({"type": "pong"}).decode())
                continue
            if msg["type"] == kind:
                return msg


async def test_push_reaches_connected_watcher_and_ack_closes_group(stack: Stack) -> None:
    """A live push arrives; the watcher's ack is recorded and stops escalation."""
    async with connect(f"{stack.url}?user=wang") as ws:
        await recv(ws, "hello")
        group = await stack.pushes.notify(
            site_id="s1",
            roles=["watcher"],
            chain=CHAIN,
            message="Evacuate",
            deadline_s=5,
            kind="evacuate",
        )
        push = await recv(ws)
        assert push["message"] == "Evacuate"
        assert push["role"] == "watcher"
        await ws.send(orjson.dumps({"type": "ack", "push_id": push["push_id"]}).decode())
        assert (await recv(ws, "acked"))["push_id"] == push["push_id"]
    pushes = await stack.pushes.group(group)
    assert [(p.user_id, p.state, p.group_state) for p in pushes] == [("wang", "acked", "acked")]


async def test_unacknowledged_push_escalates_to_next_role_each_step_recorded(stack: Stack) -> None:
    """Watcher silent past the deadline → supervisors → (no safety staff) → control room."""
    group = await stack.pushes.notify(
        site_id="s1", roles=["watcher"], chain=CHAIN, message="Man down", deadline_s=0.3
    )
    async with asyncio.timeout(10):
        while {p.role for p in await stack.pushes.group(group)} != {
            "watcher",
            "supervisor",
            "control_room",
        }:
            await asyncio.sleep(0.05)
    pushes = await stack.pushes.group(group)
    assert [(p.user_id, p.role, p.level) for p in pushes] == [
        ("wang", "watcher", 0),
        ("li", "supervisor", 1),
        ("zhao", "supervisor", 1),
        ("cr", "control_room", 3),
    ]
    assert [p.state for p in pushes[:3]] == ["escalated"] * 3


async def test_offline_supervisor_gets_unacknowledged_pushes_on_reconnect(stack: Stack) -> None:
    """Nothing is missed while a phone was offline."""
    await stack.pushes.notify(
        site_id="s1", roles=["supervisor"], chain=CHAIN, message="Heat strain", deadline_s=30
    )
    async with connect(f"{stack.url}?user=li") as ws:
        await recv(ws, "hello")
        replayed = await recv(ws)
    assert replayed["message"] == "Heat strain"
    assert replayed["state"] == "sent"


async def test_ack_of_someone_elses_push_is_refused(stack: Stack) -> None:
    """Only the recipient acknowledges a push."""
    group = await stack.pushes.notify(
        site_id="s1", roles=["watcher"], chain=CHAIN, message="x", deadline_s=30
    )
    push_id = (await stack.pushes.group(group))[0].push_id
    async with connect(f"{stack.url}?user=li") as ws:
        await recv(ws, "hello")
        await ws.send(orjson.dumps({"type": "ack", "push_id": str(push_id)}).decode())
        err = await recv(ws, "error")
        await ws.send("not json")
        bad = await recv(ws, "error")
    assert err["code"] == "not_found"
    assert bad["code"] == "bad_message"
    assert (await stack.pushes.group(group))[0].state == "sent"


async def test_client_answering_no_heartbeat_is_dropped(stack: Stack) -> None:
    """A dead phone connection is detected and closed by the server."""
    async with connect(f"{stack.url}?user=wang") as ws:
        await recv(ws, "hello")
        async with asyncio.timeout(5):
            while True:
                try:
                    await ws.recv()  # never answers the pings
                except Exception:
                    break
    assert ws.close_code == 1001
    assert stack.hub.connected("wang") == 0
