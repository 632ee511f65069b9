"""The dependencies routers declare: roles, site from path or query, per-user rate limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI

from api import errors
from api.auth import Principal, Role, rate_limited, require_roles, require_site
from api.auth.context import AuthContext
from api.settings import Settings
from tests.conftest import serve_app
from tests.factories import HTTP_TIMEOUT_S

Headers = Callable[..., dict[str, str]]
Safety = Annotated[Principal, Depends(require_roles(Role.SAFETY, Role.ADMIN))]


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()
    app.state.auth = AuthContext.from_settings(settings.auth)
    errors.install(app)

    @app.get("/sites/{site_id}/kpis", dependencies=[Depends(require_site("site_id"))])
    async def kpis(site_id: str, user: Safety) -> dict[str, str]:
        return {"site": site_id, "user": user.username}

    @app.get("/report", dependencies=[Depends(require_site("site"))])
    async def report(user: Safety) -> dict[str, str]:
        return {"user": user.username}

    @app.post("/upload", dependencies=[Depends(rate_limited("upload", per_minute=2))])
    async def upload(user: Safety) -> dict[str, str]:
        return {"user": user.username}

    return app


async def test_require_site_checks_path_and_query_parameters(
    settings: Settings, auth_headers: Headers
) -> None:
    """Own site passes; another site is 403 site_forbidden; a missing one 422; all-sites passes."""
    site_a = auth_headers(Role.SAFETY, sites=["a"], username="s-a")
    everywhere = auth_headers(Role.ADMIN, username="root")
    async with (
        serve_app(_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S) as http,
    ):
        own = await http.get("/sites/a/kpis", headers=site_a)
        other = await http.get("/sites/b/kpis", headers=site_a)
        query_own = await http.get("/report", params={"site": "a"}, headers=site_a)
        query_other = await http.get("/report", params={"site": "b"}, headers=site_a)
        missing = await http.get("/report", headers=site_a)
        admin = await http.get("/sites/b/kpis", headers=everywhere)
    assert own.json() == {"site": "a", "user": "s-a"}
    assert (other.status_code, other.json()["code"]) == (403, "site_forbidden")
    assert query_own.status_code == 200
    assert (query_other.status_code, query_other.json()["code"]) == (403, "site_forbidden")
    assert (missing.status_code, missing.json()["code"]) == (422, "invalid_query")
    assert admin.json() == {"site": "b", "user": "root"}


async def test_rate_limited_counts_per_user(settings: Settings, auth_headers: Headers) -> None:
    """Two uploads a minute per user: the third is 429; another user is unaffected."""
    alice = auth_headers(Role.SAFETY, username="alice")
    bob = auth_headers(Role.SAFETY, username="bob")
    async with (
        serve_app(_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S) as http,
    ):
        codes = [(await http.post("/upload", headers=alice)).status_code for _ in range(3)]
        other = await http.post("/upload", headers=bob)
    assert codes == [200, 200, 429]
    assert other.status_code == 200


def test_require_roles_needs_at_least_one_role() -> None:
    """An empty role list would admit nobody by accident; it is refused at definition."""
    import pytest

    with pytest.raises(ValueError, match="at least one role"):
        require_roles()
