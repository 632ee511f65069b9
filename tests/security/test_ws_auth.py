"""WebSocket authentication: header, first message or query token; 1008 for anything else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
import websockets
from fastapi import FastAPI, WebSocket

from api import errors
from api.auth import Principal, Role, authenticate_websocket
from api.auth.context import AuthContext
from api.settings import Settings
from tests.conftest import serve_app


@pytest.fixture
async def ws_url(settings: Settings) -> AsyncIterator[str]:
    """A small app whose /ws/echo uses the helper, as the control-room hub will."""
    app = FastAPI()
    app.state.auth = AuthContext.from_settings(settings.auth)
    errors.install(app)

    @app.websocket("/ws/echo/{site_id}")
    async def echo(websocket: WebSocket, site_id: str) -> None:
        user: Principal = await authenticate_websocket(
            websocket, roles=[Role.CONTROL_ROOM, Role.SUPERVISOR], site_id=site_id, timeout_s=1
        )
        text = await websocket.receive_text()
        await websocket.send_text(f"{user.username}:{text}")
        await websocket.close()

    async with serve_app(app) as url:
        yield url.replace("http://", "ws://")


async def _session(url: str, *, first: str | None = None, **kw: object) -> list[str]:
    """Messages received until the server closes; the close code is the last entry."""
    got: list[str] = []
    try:
        async with asyncio.timeout(10), websockets.connect(url, **kw) as ws:  # type: ignore[arg-type]
            if first is not None:
                await ws.send(first)
            hello = await ws.recv()
            got.append(str(hello))
            await ws.send("ping")
            got.append(str(await ws.recv()))
            await ws.recv()
    except websockets.ConnectionClosed as exc:
        got.append(f"closed {exc.rcvd.code if exc.rcvd else None}")
    return got


async def test_ws_token_in_first_message_is_accepted(
    ws_url: str, auth_headers: Callable[..., dict[str, str]]
) -> None:
    """A browser sends {"type": "auth", "access_token": ...} first and gets "authenticated"."""
    token = auth_headers(Role.SUPERVISOR, sites=["s1"], username="sue")["Authorization"][7:]
    got = await _session(
        f"{ws_url}/ws/echo/s1", first=orjson.dumps({"type": "auth", "access_token": token}).decode()
    )
    hello = orjson.loads(got[0])
    assert hello["type"] == "authenticated"
    assert hello["username"] == "sue"
    assert hello["roles"] == ["supervisor"]
    assert got[1] == "sue:ping"
    assert got[2] == "closed 1000"


async def test_ws_token_in_header_or_query_is_accepted(
    ws_url: str, auth_headers: Callable[..., dict[str, str]]
) -> None:
    """Programs may send the bearer header; the query parameter is the last resort."""
    headers = auth_headers(Role.CONTROL_ROOM, username="cr")
    by_header = await _session(f"{ws_url}/ws/echo/s9", additional_headers=headers)
    by_query = await _session(f"{ws_url}/ws/echo/s9?access_token={headers['Authorization'][7:]}")
    assert by_header[1] == "cr:ping"
    assert by_query[1] == "cr:ping"


@pytest.mark.parametrize(
    ("first", "roles", "sites"),
    [
        (None, [Role.CONTROL_ROOM], None),  # silent client: timeout
        ('{"type": "auth", "access_token": "garbage"}', [Role.CONTROL_ROOM], None),
        ("not json", [Role.CONTROL_ROOM], None),
        ('{"type": "hello"}', [Role.CONTROL_ROOM], None),
        ("TOKEN", [Role.APPROVER], None),  # wrong role
        ("TOKEN", [Role.SUPERVISOR], ["s2"]),  # other site
    ],
)
async def test_ws_without_valid_token_is_closed_with_1008(
    ws_url: str,
    auth_headers: Callable[..., dict[str, str]],
    first: str | None,
    roles: list[Role],
    sites: list[str] | None,
) -> None:
    """No, a bad, a wrong-role or a wrong-site token: closed with policy violation."""
    if first == "TOKEN":
        token = auth_headers(*roles, sites=sites)["Authorization"][7:]
        first = orjson.dumps({"type": "auth", "access_token": token}).decode()
    got = await _session(f"{ws_url}/ws/echo/s1", first=first)
    assert got == ["closed 1008"]
