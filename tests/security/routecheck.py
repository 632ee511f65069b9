"""Finds routes of an app that can be used without authentication (HTTP and WebSocket).

Routes are enumerated through ``fastapi.routing.iter_route_contexts``: since FastAPI 0.165
``app.routes`` holds one entry per included router, not the routes themselves.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import websockets
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import BaseRoute, Mount, WebSocketRoute

#: The only routes anybody may call without a token, and why:
#: - /healthz: load balancers and monitoring probe it; it says up/down and counts, no data.
#: - the token endpoint: that is how one gets a token.
#: - the API docs: they describe the interface, hold no data, and Swagger UI must load the
#:   schema without a token to offer its "Authorize" login (PP_API_PUBLIC_DOCS=false hides them).
#: - / : the control-room page (its code and strings, no data: every call it makes for data
#:   carries the user's token). Its assets under /static are a mount, not routes.
ANONYMOUS = frozenset(
    {
        "/",
        "/healthz",
        "/api/v1/auth/token",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
_PARAM = re.compile(r"{([^}:]+)(?::([^}]+))?}")


@dataclass(frozen=True)
class Entry:
    """One route as the app serves it (path with every prefix, all its dependencies)."""

    path: str
    methods: frozenset[str]
    websocket: bool
    dependant: Dependant | None


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    template: str


def entries(app: FastAPI) -> list[Entry]:
    return list(_entries(app.routes, ""))


def _entries(routes: Iterable[BaseRoute], prefix: str) -> Iterator[Entry]:
    for ctx in iter_route_contexts(list(routes)):
        original = ctx.original_route
        if isinstance(original, Mount):
            yield from _entries(original.routes, prefix + original.path)
            continue
        dependant: Any = getattr(ctx, "dependant", None)
        yield Entry(
            path=prefix + (ctx.path or ""),
            methods=frozenset(ctx.methods or ()),
            websocket=isinstance(original, (APIWebSocketRoute, WebSocketRoute)),
            dependant=dependant,
        )


def fill(template: str) -> str:
    """A concrete path for a route template (valid-looking values for every parameter)."""
    return _PARAM.sub(lambda m: "1" if m.group(2) in ("int", "float") else "x1", template)


def declared_roles(entry: Entry) -> frozenset[str] | None:
    """The roles a route's dependencies admit (`require_roles` / `authenticated_only`), or
    None when it declares none."""
    found: set[str] = set()
    declared = False
    stack = list(entry.dependant.dependencies) if entry.dependant else []
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "required_roles", None)
        if roles is not None:
            declared = True
            found |= set(roles)
        stack += dep.dependencies
    return frozenset(found) if declared else None


def is_self_service(entry: Entry) -> bool:
    """True when the route admits any authenticated caller (`authenticated_only`), even one
    holding no role at all."""
    stack = list(entry.dependant.dependencies) if entry.dependant else []
    while stack:
        dep = stack.pop()
        if getattr(dep.call, "__name__", "") == "require_authenticated":
            return True
        stack += dep.dependencies
    return False


def http_probes(app: FastAPI) -> list[Probe]:
    return [
        Probe(method, fill(e.path), e.path)
        for e in entries(app)
        if not e.websocket
        for method in sorted(e.methods - {"HEAD", "OPTIONS"})
    ]


def ws_paths(app: FastAPI) -> list[str]:
    return [e.path for e in entries(app) if e.websocket]


async def open_http_routes(
    app: FastAPI, base_url: str, headers: dict[str, str] | None = None
) -> list[str]:
    """Routes outside `ANONYMOUS` that do not answer 401 (with ``WWW-Authenticate: Bearer``)
    to a request carrying ``headers`` (none: no token at all)."""
    offenders = []
    async with httpx.AsyncClient(base_url=base_url, headers=headers or {}) as http:
        for probe in http_probes(app):
            if probe.template in ANONYMOUS:
                continue
            r = await http.request(probe.method, probe.path, json={})
            if r.status_code != 401 or r.headers.get("www-authenticate") != "Bearer":
                offenders.append(f"{probe.method} {probe.template} -> {r.status_code}")
    return offenders


async def open_ws_routes(app: FastAPI, base_url: str, timeout_s: float = 15.0) -> list[str]:
    """WebSocket routes that do not close with 1008 when no valid token is ever sent."""
    offenders = []
    ws_base = base_url.replace("http://", "ws://")
    for template in ws_paths(app):
        for first in (None, '{"type": "auth", "access_token": "forged"}'):
            closed = await _closed_with_policy_violation(ws_base + fill(template), first, timeout_s)
            if not closed:
                offenders.append(f"WS {template} (first message: {first})")
    return offenders


async def _closed_with_policy_violation(url: str, first: str | None, timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s), websockets.connect(url) as ws:
            if first is not None:
                await ws.send(first)
            while True:
                message = await ws.recv()
                if '"authenticated"' in str(message):
                    return False
    except websockets.ConnectionClosed as exc:
        return exc.rcvd is not None and exc.rcvd.code == 1008
    except websockets.InvalidStatus as exc:
        return exc.response.status_code in (401, 403)
    except TimeoutError:
        return False
