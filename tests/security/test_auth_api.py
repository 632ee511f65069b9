"""Users, logins, tokens, roles and sites on a running service."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from api.auth import Principal, Role, TokenService
from api.settings import Settings
from tests.factories import HTTP_TIMEOUT_S
from tests.security.helpers import PASSWORD, bearer, create_user, login, seed_devices

Headers = Callable[..., dict[str, str]]


async def test_login_valid_password_returns_tokens_that_identify_the_user(
    live_app: str, database_url: str, admin_headers: dict[str, str]
) -> None:
    """The password grant returns a bearer access token whose /me shows roles and sites."""
    seed_devices(database_url, {"d-a": ("site-a", None)})
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        await create_user(http, admin_headers, "sup.a", roles=["supervisor"], sites=["site-a"])
        r = await login(http, "SUP.A ")
        assert r.status_code == 200, r.text
        tokens = r.json()
        me = await http.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60
    assert tokens["refresh_expires_in"] == 12 * 3600
    assert me.status_code == 200
    assert me.json()["username"] == "sup.a"
    assert me.json()["roles"] == ["supervisor"]
    assert me.json()["sites"] == ["site-a"]
    assert r.headers["cache-control"] == "no-store"


async def test_login_wrong_password_or_unknown_user_get_the_same_401(
    live_app: str, admin_headers: dict[str, str]
) -> None:
    """Failures do not tell whether the user exists."""
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        await create_user(http, admin_headers, "alice", roles=["safety"], all_sites=True)
        wrong = await login(http, "alice", "not the password")
        unknown = await login(http, "mallory", "not the password")
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert r.json() == {
            "detail": "invalid user name or password",
            "code": "invalid_credentials",
        }
        assert r.headers["www-authenticate"] == "Bearer"


async def test_login_disabled_user_is_refused(live_app: str, admin_headers: dict[str, str]) -> None:
    """Disabling a user stops their logins and their refresh tokens."""
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        await create_user(http, admin_headers, "bob", roles=["watcher"], all_sites=True)
        refresh = (await login(http, "bob")).json()["refresh_token"]
        r = await http.patch("/api/v1/users/bob", json={"disabled": True}, headers=admin_headers)
        assert r.json()["disabled"] is True
        again = await login(http, "bob")
        refreshed = await http.post(
            "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh}
        )
    assert again.status_code == 401
    assert refreshed.status_code == 401


async def test_refresh_grant_issues_new_tokens_until_logout(
    live_app: str, admin_headers: dict[str, str]
) -> None:
    """A refresh token buys new tokens; logout revokes every refresh token of the user."""
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        await create_user(http, admin_headers, "carol", roles=["approver"], all_sites=True)
        first = (await login(http, "carol")).json()
        grant = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        second = await http.post("/api/v1/auth/token", data=grant)
        assert second.status_code == 200
        me = await http.get("/api/v1/auth/me", headers=bearer(second.json()["access_token"]))
        assert me.json()["username"] == "carol"
        out = await http.post("/api/v1/auth/logout", headers=bearer(first["access_token"]))
        after = await http.post("/api/v1/auth/token", data=grant)
    assert out.status_code == 204
    assert after.status_code == 401
    assert after.json()["code"] == "invalid_credentials"


async def test_refresh_token_is_not_an_access_token(
    live_app: str, admin_headers: dict[str, str]
) -> None:
    """A refresh token presented as bearer is refused (and an access token cannot refresh)."""
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        await create_user(http, admin_headers, "dave", roles=["safety"], all_sites=True)
        tokens = (await login(http, "dave")).json()
        as_bearer = await http.get("/api/v1/auth/me", headers=bearer(tokens["refresh_token"]))
        as_refresh = await http.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["access_token"]},
        )
    assert as_bearer.status_code == 401
    assert as_refresh.status_code == 401


async def test_password_change_needs_old_password_and_revokes_refresh(
    live_app: str, admin_headers: dict[str, str]
) -> None:
    """Changing one's password: the old one must be right; old refresh tokens die."""
    new = "a much better passphrase"
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        await create_user(http, admin_headers, "erin", roles=["worker"], all_sites=True)
        tokens = (await login(http, "erin")).json()
        auth = bearer(tokens["access_token"])
        wrong = await http.post(
            "/api/v1/auth/password",
            json={"old_password": "nope", "new_password": new},
            headers=auth,
        )
        short = await http.post(
            "/api/v1/auth/password",
            json={"old_password": PASSWORD, "new_password": "short"},
            headers=auth,
        )
        ok = await http.post(
            "/api/v1/auth/password",
            json={"old_password": PASSWORD, "new_password": new},
            headers=auth,
        )
        old_login = await login(http, "erin")
        new_login = await login(http, "erin", new)
        stale = await http.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
    assert wrong.status_code == 401
    assert short.status_code == 422
    assert short.json()["code"] == "weak_password"
    assert ok.status_code == 204
    assert old_login.status_code == 401
    assert new_login.status_code == 200
    assert stale.status_code == 401


async def test_login_failures_are_rate_limited_per_user_and_address(
    live_app: str, admin_headers: dict[str, str]
) -> None:
    """After 5 failures in a minute even the right password gets 429; others are unaffected."""
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        await create_user(http, admin_headers, "frank", roles=["safety"], all_sites=True)
        await create_user(http, admin_headers, "grace", roles=["safety"], all_sites=True)
        failures = [(await login(http, "frank", f"guess {i}")).status_code for i in range(5)]
        blocked = await login(http, "frank")
        other = await login(http, "grace")
    assert failures == [401] * 5
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "too_many_requests"
    assert int(blocked.headers["retry-after"]) >= 1
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("roles", "sites", "device", "status", "code"),
    [
        (["supervisor"], ["site-a"], "d-a", 200, None),
        (["supervisor"], ["site-a"], "d-b", 403, "site_forbidden"),
        (["control_room"], None, "d-b", 200, None),
        (["approver"], ["site-a"], "d-a", 403, "forbidden"),
        (["worker"], ["site-a"], "d-a", 200, None),
        (["worker"], ["site-a"], "d-a2", 403, "forbidden"),
        (["supervisor"], ["site-a"], "nobody", 404, "not_found"),
    ],
)
async def test_telemetry_read_is_scoped_by_role_site_and_worker(
    live_app: str,
    database_url: str,
    auth_headers: Headers,
    roles: list[str],
    sites: list[str] | None,
    device: str,
    status: int,
    code: str | None,
) -> None:
    """Roles that watch read their sites' devices; a worker only their own; others nothing."""
    seed_devices(
        database_url,
        {"d-a": ("site-a", "w-1"), "d-a2": ("site-a", "w-2"), "d-b": ("site-b", None)},
    )
    headers = auth_headers(*[Role(r) for r in roles], sites=sites, worker_id="w-1")
    async with httpx.AsyncClient(base_url=live_app, headers=headers) as http:
        r = await http.get(f"/api/v1/devices/{device}/latest")
        window = await http.get(
            "/api/v1/telemetry",
            params={"device": device, "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T01:00Z"},
        )
    # No samples are stored: an allowed read of a known device is a 404 "no sample" for
    # latest and an empty page for the window.
    if status == 200:
        assert r.status_code == 404
        assert r.json()["detail"] == f"device {device!r} not found"
        assert window.status_code == 200
        assert window.json()["count"] == 0
    else:
        assert r.status_code == status
        assert r.json()["code"] == code
        assert window.status_code == status
        assert window.json()["code"] == code


async def test_expired_access_token_gets_401_token_expired(
    live_app: str, settings: Settings
) -> None:
    """An access token past its lifetime is refused with a code that says so."""
    assert settings.auth.secret is not None
    import datetime as dt
    import time

    old = TokenService(
        key=settings.auth.secret.get_secret_value(),
        issuer=settings.auth.issuer,
        access_ttl=dt.timedelta(minutes=15),
        refresh_ttl=dt.timedelta(hours=1),
        clock=lambda: time.time() - 3600,
    )
    p = Principal("old", frozenset({Role.ADMIN}), None)
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        r = await http.get("/api/v1/auth/me", headers=bearer(old.access_token(p).token))
    assert r.status_code == 401
    assert r.json()["code"] == "token_expired"


async def test_admin_creates_users_within_their_own_sites_only(
    live_app: str, database_url: str, auth_headers: Headers, admin_headers: dict[str, str]
) -> None:
    """A site admin grants only their sites and sees only users confined to them."""
    seed_devices(database_url, {"d-a": ("site-a", None), "d-b": ("site-b", None)})
    site_admin = auth_headers(Role.ADMIN, sites=["site-a"], username="admin-a")
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        ok = await create_user(http, site_admin, "henry", roles=["watcher"], sites=["site-a"])
        other_site = await http.post(
            "/api/v1/users",
            json={
                "username": "ivan",
                "display_name": "Ivan",
                "password": PASSWORD,
                "roles": ["watcher"],
                "sites": ["site-b"],
            },
            headers=site_admin,
        )
        await create_user(http, admin_headers, "judy", roles=["safety"], all_sites=True)
        seen = await http.get("/api/v1/users", headers=site_admin)
        hidden = await http.get("/api/v1/users/judy", headers=site_admin)
        dup = await http.post(
            "/api/v1/users",
            json={
                "username": "henry",
                "display_name": "H",
                "password": PASSWORD,
                "roles": ["watcher"],
            },
            headers=admin_headers,
        )
        unknown_site = await http.post(
            "/api/v1/users",
            json={
                "username": "kate",
                "display_name": "K",
                "password": PASSWORD,
                "roles": ["watcher"],
                "sites": ["site-z"],
            },
            headers=admin_headers,
        )
    assert ok["sites"] == ["site-a"]
    assert "password" not in ok
    assert "password_hash" not in ok
    assert other_site.status_code == 403
    assert other_site.json()["code"] == "site_forbidden"
    assert [u["username"] for u in seen.json()] == ["henry"]
    assert hidden.status_code == 404
    assert dup.status_code == 409
    assert unknown_site.status_code == 404


async def test_non_admin_cannot_manage_users(live_app: str, auth_headers: Headers) -> None:
    """Only admins list or create users."""
    headers = auth_headers(Role.SAFETY, Role.CONTROL_ROOM, Role.APPROVER)
    async with httpx.AsyncClient(base_url=live_app, headers=headers) as http:
        r = await http.get("/api/v1/users")
    assert r.status_code == 403
    assert r.json() == {"detail": "needs one of the roles: admin", "code": "forbidden"}


async def test_oversized_body_is_refused_with_413_before_parsing(
    live_app: str, admin_headers: dict[str, str]
) -> None:
    """Bodies over PP_API_MAX_BODY_BYTES get 413, declared or streamed (chunked)."""
    big = b"x" * (1_048_576 + 1)

    async def chunks() -> object:
        for i in range(0, len(big), 65_536):
            yield big[i : i + 65_536]

    async with httpx.AsyncClient(base_url=live_app, headers=admin_headers) as http:
        declared = await http.post(
            "/api/v1/users", content=big, headers={"content-type": "application/json"}
        )
        streamed = await http.post(
            "/api/v1/auth/token",
            content=chunks(),  # type: ignore[arg-type]
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    for r in (declared, streamed):
        assert r.status_code == 413
        assert r.json()["code"] == "payload_too_large"


async def test_responses_carry_security_headers(live_app: str) -> None:
    """nosniff, no framing, no referrer everywhere; no caching of API replies."""
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        health = await http.get("/healthz")
        api = await http.get("/api/v1/auth/me")
    for r in (health, api):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert api.headers["cache-control"] == "no-store"
