"""ASGI middleware of the HTTP API: request body size limit and security headers."""

from __future__ import annotations

import re
from typing import Any, Final

import orjson
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body

#: Sent with every HTTP response.
SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
#: Sent with every response under /api/: replies carry tokens and personal data.
NO_STORE: Final = (b"cache-control", b"no-store")


class _TooLarge(HTTPException):
    """Raised from ``receive`` past the limit. An HTTPException, so FastAPI's body parsing
    passes it on (to the error handlers: 413 in the usual error form) instead of turning it
    into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodySizeLimit:
    """Refuses request bodies larger than the limit with HTTP 413 in the API's error form —
    by ``Content-Length`` before the application runs, and while reading a body sent without
    one (chunked).

    The limit is ``max_bytes``, except on routes that declare FastAPI's own
    ``max_body_size=`` (an upload route raising it): their value applies, here and in
    FastAPI.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._routes: list[tuple[re.Pattern[str], frozenset[str], int]] | None = None

    def limit_for(self, scope: Scope) -> int:
        if self._routes is None:
            self._routes = _declared_limits(scope.get("app"))
        path, method = scope.get("path", ""), scope.get("method", "")
        for regex, methods, limit in self._routes:
            if method in methods and regex.match(path):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _reply_413(send, limit)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await _reply_413(send, limit)


def _declared_limits(app: Any) -> list[tuple[re.Pattern[str], frozenset[str], int]]:
    """(path regex, methods, limit) of every route with its own ``max_body_size``."""
    if app is None:
        return []
    out = []
    for ctx in iter_route_contexts(list(app.routes)):
        limit = getattr(ctx, "max_body_size", None)
        regex = getattr(ctx, "path_regex", None)
        if isinstance(limit, int) and regex is not None:
            out.append((regex, frozenset(ctx.methods or ()), limit))
    return out


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reply_413(send: Send, limit: int) -> None:
    body = orjson.dumps(error_body(f"request body larger than {limit} bytes", "payload_too_large"))
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response and ``Cache-Control: no-store`` under /api/."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path", "").startswith("/api/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [*SECURITY_HEADERS, NO_STORE] if api else list(SECURITY_HEADERS)
                headers += [h for h in extra if h[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
