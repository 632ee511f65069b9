"""No route is open by accident: every route of the app — today's and those added later —
answers 401 without a valid token, unless it is one of the few listed anonymous ones."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import httpx
from fastapi import Depends, FastAPI, WebSocket

from api import errors
from api.app import create_app
from api.auth import Principal, Role, TokenService, authenticate_websocket, require_roles
from api.auth.context import AuthContext
from api.settings import Settings
from tests.conftest import TEST_AUTH, serve_app
from tests.security.routecheck import (
    ANONYMOUS,
    declared_roles,
    entries,
    http_probes,
    is_self_service,
    open_http_routes,
    open_ws_routes,
)


async def test_every_route_without_token_gets_401(settings: Settings) -> None:
    """Each method of each route outside the anonymous list answers 401 + WWW-Authenticate."""
    app = create_app(settings)
    async with serve_app(app) as url:
        assert await open_http_routes(app, url) == []
        assert await open_ws_routes(app, url) == []
    probed = {p.template for p in http_probes(app)}
    assert "/api/v1/telemetry" in probed
    assert "/api/v1/devices/{device_id}/latest" in probed


async def test_every_route_with_forged_or_garbage_token_gets_401(settings: Settings) -> None:
    """A token signed with another key, or no JWT at all, is no better than none."""
    forged = TokenService(
        key="another-key-of-32-characters-or-more!",
        issuer=settings.auth.issuer,
        access_ttl=dt.timedelta(minutes=5),
        refresh_ttl=dt.timedelta(minutes=5),
    )
    token = forged.access_token(Principal("eve", frozenset({Role.ADMIN}), None)).token
    app = create_app(settings)
    async with serve_app(app) as url:
        assert await open_http_routes(app, url, {"Authorization": f"Bearer {token}"}) == []
        assert await open_http_routes(app, url, {"Authorization": "Bearer not-a-jwt"}) == []
        assert await open_http_routes(app, url, {"Authorization": "Basic YWRtaW46YWRtaW4="}) == []


def test_every_protected_route_declares_its_roles(settings: Settings) -> None:
    """Beyond authentication, every HTTP route names the roles it admits (require_roles, or
    authenticated_only for self-service), so adding a route forces that decision. (WebSocket
    routes name theirs in `authenticate_websocket`; the 1008 check covers them.)"""
    app = create_app(settings)
    routes = entries(app)
    undeclared = [
        f"{sorted(e.methods)} {e.path}"
        for e in routes
        if not e.websocket and e.path not in ANONYMOUS and declared_roles(e) is None
    ]
    assert undeclared == []
    assert len([e for e in routes if e.path not in ANONYMOUS]) >= 9


async def test_role_less_token_is_forbidden_except_on_self_service_routes(
    settings: Settings, auth_headers: Callable[..., dict[str, str]]
) -> None:
    """A valid token with no role gets 403 everywhere but the self-service routes."""
    app = create_app(settings)
    self_service = {e.path for e in entries(app) if is_self_service(e)}
    assert self_service == {"/api/v1/auth/me", "/api/v1/auth/logout", "/api/v1/auth/password"}
    headers = auth_headers(username="nobody")
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, headers=headers) as http:
        statuses = {
            (p.method, p.template): (await http.request(p.method, p.path, json={})).status_code
            for p in http_probes(app)
            if p.template not in ANONYMOUS | self_service
        }
    assert statuses
    assert {k: v for k, v in statuses.items() if v != 403} == {}


async def test_route_check_catches_an_open_http_and_websocket_route() -> None:
    """The checker itself fails an app with a forgotten dependency (so it can fail)."""
    app = FastAPI()
    app.state.auth = AuthContext.from_settings(TEST_AUTH)
    errors.install(app)
    guarded = Depends(require_roles(Role.ADMIN))

    @app.get("/api/v1/guarded", dependencies=[guarded])
    async def guarded_route() -> dict[str, str]:
        return {}

    @app.get("/api/v1/forgotten/{thing_id}")
    async def forgotten(thing_id: str) -> dict[str, str]:
        return {"thing": thing_id}

    @app.websocket("/ws/v1/forgotten")
    async def ws_forgotten(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text('{"type": "authenticated"}')
        await websocket.close()

    @app.websocket("/ws/v1/guarded")
    async def ws_guarded(websocket: WebSocket) -> None:
        await authenticate_websocket(websocket, roles=[Role.CONTROL_ROOM], timeout_s=1)

    async with serve_app(app) as url:
        assert await open_http_routes(app, url) == ["GET /api/v1/forgotten/{thing_id} -> 200"]
        assert await open_ws_routes(app, url, timeout_s=5) == [
            "WS /ws/v1/forgotten (first message: None)",
            'WS /ws/v1/forgotten (first message: {"type": "auth", "access_token": "forged"})',
        ]
    undeclared = [
        e.path
        for e in entries(app)
        if not e.websocket and e.path not in ANONYMOUS and declared_roles(e) is None
    ]
    assert undeclared == ["/api/v1/forgotten/{thing_id}"]


def test_openapi_documents_auth_errors_and_error_form(settings: Settings) -> None:
    """Every secured operation documents 401 and 403; every error reply is ErrorRead."""
    schema = create_app(settings).openapi()
    ops = [(p, m, op) for p, ms in schema["paths"].items() for m, op in ms.items()]
    secured = [(p, m, op) for p, m, op in ops if op.get("security")]
    assert {p for p, _, _ in secured} >= {"/api/v1/telemetry", "/api/v1/users"}
    for path, method, op in secured:
        assert {"401", "403"} <= set(op["responses"]), (method, path)
    for _, _, op in ops:
        for code, reply in op["responses"].items():
            if code.startswith(("4", "5")):
                ref = reply["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorRead"
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_public_docs_off_removes_docs_and_schema_routes(settings: Settings) -> None:
    """PP_API_PUBLIC_DOCS=false: no anonymous documentation routes at all."""
    settings.api.public_docs = False
    paths = {e.path for e in entries(create_app(settings))}
    assert paths.isdisjoint({"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})
    assert "/healthz" in paths
