"""Authentication of WebSocket connections (control-room and supervisor streams).

A browser cannot set headers on a WebSocket, so the access token comes, in this order of
preference, from the ``Authorization: Bearer`` header (other programs), the first message
``{"type": "auth", "access_token": "..."}`` (browsers; keeps the token out of URLs and logs),
or the query parameter ``?access_token=`` (last resort). The server answers
``{"type": "authenticated", ...}``; any failure closes with 1008 (policy violation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson
from fastapi import WebSocketException, status
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from api.auth.context import AuthContext
from api.auth.models import Principal, Role
from api.errors import AuthenticationError, PermissionDeniedError, SiteForbiddenError

POLICY_VIOLATION = status.WS_1008_POLICY_VIOLATION


async def authenticate_websocket(
    websocket: WebSocket,
    *,
    roles: Iterable[Role],
    site_id: str | None = None,
    timeout_s: float = 5.0,
) -> Principal:
    """Accept ``websocket`` and return its verified principal with one of ``roles`` (and
    access to ``site_id`` when given). Raises `WebSocketException` (close 1008) otherwise —
    let it propagate from the endpoint. The hub must close the socket once
    ``principal.expires_at`` has passed (or accept a new ``auth`` message)."""
    ctx: AuthContext = websocket.app.state.auth
    token = _header_token(websocket) or websocket.query_params.get("access_token")
    if websocket.application_state == WebSocketState.CONNECTING:
        await websocket.accept()
    if not token:
        token = await _first_message_token(websocket, timeout_s)
    try:
        principal = ctx.tokens.principal(token)
        principal.require_any(roles)
        if site_id is not None:
            principal.check_site(site_id)
    except (AuthenticationError, PermissionDeniedError, SiteForbiddenError) as exc:
        raise WebSocketException(POLICY_VIOLATION, reason=str(exc)) from exc
    await websocket.send_text(
        orjson.dumps(
            {
                "type": "authenticated",
                "username": principal.username,
                "roles": sorted(principal.roles),
                "expires_at": principal.expires_at.isoformat() if principal.expires_at else None,
            }
        ).decode()
    )
    return principal


def _header_token(websocket: WebSocket) -> str | None:
    value = websocket.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _first_message_token(websocket: WebSocket, timeout_s: float) -> str:
    try:
        async with asyncio.timeout(timeout_s):
            message = await websocket.receive()
    except TimeoutError as exc:
        raise WebSocketException(POLICY_VIOLATION, reason="no auth message in time") from exc
    if message.get("type") == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = message.get("text") or message.get("bytes") or b""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WebSocketException(POLICY_VIOLATION, reason="first message is not JSON") from exc
    token = body.get("access_token") if isinstance(body, dict) else None
    if not (isinstance(body, dict) and body.get("type") == "auth" and isinstance(token, str)):
        raise WebSocketException(POLICY_VIOLATION, reason='expected {"type": "auth", ...}')
    return token
