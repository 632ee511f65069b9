"""The page's own routes: the page and its assets without login (no CDN), and the read-only
data routes it needs — sites with time zones, people, heat map, a supervisor's permits."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from api.app import create_app
from api.auth import Role
from api.page_routes import STATIC_DIR
from api.settings import Settings
from tests.browser.demo_data import DemoSite, seed
from tests.conftest import serve_app
from tests.factories import HTTP_TIMEOUT_S


@pytest.fixture
async def site_app(settings: Settings) -> AsyncIterator[tuple[str, DemoSite]]:
    assert settings.database.url
    demo = seed(settings.database.url, settings.auth)
    async with serve_app(create_app(settings)) as url:
        yield url, demo


async def test_page_and_assets_load_without_login_and_name_no_other_origin(
    site_app: tuple[str, DemoSite],
) -> None:
    """`/` and every asset it loads answer 200 anonymously; nothing points off-site; the CSP
    allows this origin only."""
    url, _ = site_app
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assets = [
            a.relative_to(STATIC_DIR).as_posix() for a in STATIC_DIR.rglob("*") if a.is_file()
        ]
        for asset in assets:
            reply = await http.get(f"/static/{asset}")
            assert reply.status_code == 200, asset
            assert not re.search(
                r"(?:src|href)=[\"']?https?://|import .* from [\"']https?://", reply.text
            )
    assert {"js/main.js", "js/control.js", "app.css", "index.html"} <= set(assets)


async def test_sites_lists_only_the_callers_sites_with_time_zone(
    site_app: tuple[str, DemoSite], auth_headers: Callable[..., dict[str, str]]
) -> None:
    """A user of one site sees that site (and its zone); a user of another sees none of it."""
    url, demo = site_app
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S) as http:
        mine = await http.get(
            "/api/v1/sites", headers=auth_headers(Role.SUPERVISOR, sites=[demo.site_id])
        )
        other = await http.get(
            "/api/v1/sites", headers=auth_headers(Role.CONTROL_ROOM, sites=["elsewhere"])
        )
    assert mine.json() == [
        {"site_id": demo.site_id, "name": "上海化学工业区 演示装置", "timezone": "Asia/Shanghai"}
    ]
    assert other.json() == []


async def test_people_names_workers_and_permit_users_of_the_site_only(
    site_app: tuple[str, DemoSite], auth_headers: Callable[..., dict[str, str]]
) -> None:
    """Names for ids, with each worker's devices; another site's user is refused."""
    url, demo = site_app
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S) as http:
        ok = await http.get(
            f"/api/v1/sites/{demo.site_id}/people", headers=auth_headers(Role.WATCHER)
        )
        denied = await http.get(
            f"/api/v1/sites/{demo.site_id}/people", headers=auth_headers(Role.WATCHER, sites=["x"])
        )
        worker_role = await http.get(
            f"/api/v1/sites/{demo.site_id}/people", headers=auth_headers(Role.WORKER)
        )
    workers = {w["worker_id"]: w for w in ok.json()["workers"]}
    assert workers["w-li-qiang"]["name"] == "李强"
    assert workers["w-li-qiang"]["devices"] == ["ww-dh-02"]
    assert {u["user_id"]: u["name"] for u in ok.json()["users"]}["w-sun-li"] == "孙丽"
    assert denied.status_code == 403
    assert denied.json()["code"] == "site_forbidden"
    assert worker_role.status_code == 403


async def test_heatmap_bins_stored_positions_and_lists_work_points(
    site_app: tuple[str, DemoSite],
    settings: Settings,
    auth_headers: Callable[..., dict[str, str]],
) -> None:
    """Samples in one 10 m cell count together, a sample 100 m away is another cell; samples
    outside the period or of another site are not counted; permits of the period are listed."""
    url, demo = site_app
    assert settings.database.url
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rows = [
        ("ww-dh-01", now - dt.timedelta(minutes=5), 30.739901, 121.343401),
        ("ww-dh-02", now - dt.timedelta(minutes=4), 30.739902, 121.343402),
        ("ww-dh-02", now - dt.timedelta(minutes=3), 30.739903, 121.343403),
        ("ww-sx-01", now - dt.timedelta(minutes=2), 30.740801, 121.343401),  # ~100 m north
        ("ww-sx-01", now - dt.timedelta(hours=3), 30.7399, 121.3434),  # before the period
    ]
    with psycopg.connect(settings.database.url, autocommit=True) as conn:
        for day in {r[1].date() for r in rows}:
            conn.execute("SELECT pp_ensure_telemetry_partition(%s)", (day,))
        for seq, (device, ts, lat, lon) in enumerate(rows, 1):
            conn.execute(
                "INSERT INTO telemetry (ts, device_id, seq, lat, lon) VALUES (%s, %s, %s, %s, %s)",
                (ts, device, seq, lat, lon),
            )
    params = {
        "start": (now - dt.timedelta(hours=1)).isoformat(),
        "end": now.isoformat(),
        "cell_m": 10,
    }
    async with httpx.AsyncClient(base_url=url, headers=auth_headers(Role.SAFETY)) as http:
        reply = await http.get(f"/api/v1/sites/{demo.site_id}/heatmap", params=params)
        too_long = await http.get(
            f"/api/v1/sites/{demo.site_id}/heatmap",
            params={**params, "start": (now - dt.timedelta(days=40)).isoformat()},
        )
    body = reply.json()
    assert [(c["samples"], c["devices"]) for c in body["cells"]] == [(3, 2), (1, 1)]
    assert sorted(p["number"] for p in body["work_points"]) == ["DH-0815", "GC-0817", "SX-0816"]
    assert too_long.status_code == 422
    assert too_long.json()["code"] == "invalid_query"


async def test_my_permits_by_involvement_and_role(
    site_app: tuple[str, DemoSite], auth_headers: Callable[..., dict[str, str]]
) -> None:
    """The watcher gets the permit they watch; a supervisor every live permit of the site;
    a worker the permits they work on; someone else nothing."""
    url, demo = site_app
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S) as http:

        async def mine(*roles: Role, **kw: object) -> list[tuple[str, str]]:
            reply = await http.get("/api/v1/me/permits", headers=auth_headers(*roles, **kw))
            return sorted((p["number"], p["involvement"]) for p in reply.json())

        watcher = await mine(Role.WATCHER, username="w-sun-li", sites=[demo.site_id])
        supervisor = await mine(Role.SUPERVISOR, username="sup.li", sites=[demo.site_id])
        crew = await mine(Role.WORKER, username="liqiang", worker_id="w-li-qiang")
        stranger = await mine(Role.WATCHER, username="nobody")
    assert watcher == [("SX-0816", "watcher")]
    assert supervisor == [("DH-0815", "site"), ("GC-0817", "site"), ("SX-0816", "site")]
    assert crew == [("DH-0815", "crew")]
    assert stranger == []


def test_static_dir_is_inside_the_package() -> None:
    """The assets ship with the package (no CDN, no build step)."""
    assert Path(__file__).resolve().parents[2] / "api" / "static" == STATIC_DIR
    assert (STATIC_DIR / "index.html").read_text().count("/static/") >= 3
