"""The control-room page (`/`, `/static/…`) and the small read-only routes only it needs: the
caller's sites with their time zones, a site's people, the heat map of work points and the
permits a supervisor's phone shows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from psycopg.rows import dict_row

from api.auth import Principal, Role, require_roles
from api.enforcement_routes import ERRORS, WATCHERS, Anyone, _jsonable, runtime
from api.errors import InvalidQueryError

STATIC_DIR = Path(__file__).parent / "static"
#: The page loads nothing from elsewhere; data comes from this origin's API and WebSockets.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
MAX_HEATMAP_WINDOW = dt.timedelta(days=31)
#: Metres per degree of latitude (WGS 84 mean); longitude scales with cos(latitude).
M_PER_DEG = 111_320.0
LIVE_STATES = ("approved", "active", "suspended")

router = APIRouter(prefix="/api/v1")
page_router = APIRouter(include_in_schema=False)
Watcher = Annotated[Principal, Depends(require_roles(*WATCHERS))]


# -- the page itself (anonymous: code and strings, no data) --------------------------------------


@page_router.get("/")
async def index() -> FileResponse:
    """The control-room page (login, control room, history, heat map, supervisor view)."""
    return FileResponse(
        STATIC_DIR / "index.html",
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"},
    )


def install(app: FastAPI) -> None:
    """Serve the page and its assets (all shipped in the package: no CDN)."""
    app.include_router(page_router)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


# -- sites and people -----------------------------------------------------------------------------


@router.get("/sites", responses=ERRORS, tags=["sites"])
async def sites(request: Request, user: Anyone) -> list[dict[str, Any]]:
    """The caller's sites with their names and time zones (the page shows site time)."""
    async with runtime(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT site_id, name, timezone FROM sites"
            " WHERE (%s::text[] IS NULL OR site_id = ANY(%s)) ORDER BY site_id",
            (user.site_filter(), user.site_filter()),
        )
        rows = await cur.fetchall()
    return [{"site_id": r[0], "name": r[1], "timezone": r[2]} for r in rows]


@router.get("/sites/{site_id}/people", responses=ERRORS, tags=["sites"])
async def people(request: Request, user: Watcher, site_id: str) -> dict[str, Any]:
    """Workers of the site (name, crew, devices) and the permit users (watchers, applicants)
    registered for it: the names the control room shows instead of ids."""
    user.check_site(site_id)
    async with (
        runtime(request).pool.connection() as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute(
            "SELECT w.worker_id, w.name, w.crew, w.age, w.acclimatized,"
            " ARRAY(SELECT d.device_id FROM devices d WHERE d.worker_id = w.worker_id"
            "       ORDER BY d.device_id) AS devices"
            " FROM workers w WHERE w.site_id = %s ORDER BY w.worker_id",
            (site_id,),
        )
        workers = await cur.fetchall()
        await cur.execute(
            "SELECT user_id, name, worker_id FROM permit_users"
            " WHERE site_id = %s OR site_id IS NULL ORDER BY user_id",
            (site_id,),
        )
        users = await cur.fetchall()
    return {"site_id": site_id, "workers": workers, "users": users}


# -- heat map -------------------------------------------------------------------------------------


@router.get("/sites/{site_id}/heatmap", responses=ERRORS, tags=["sites"])
async def heatmap(
    request: Request,
    user: Watcher,
    site_id: str,
    start: dt.datetime,
    end: dt.datetime,
    cell_m: Annotated[float, Query(ge=2, le=200, description="Grid cell size, metres.")] = 10.0,
) -> dict[str, Any]:
    """Where people worked in ``[start, end)``: stored positions of the site's devices binned
    into square cells (samples and distinct devices per cell), and the work points of the
    permits whose planned window overlaps the period."""
    user.check_site(site_id)
    if end <= start or end - start > MAX_HEATMAP_WINDOW:
        raise InvalidQueryError("the window must be positive and at most 31 days")
    async with (
        runtime(request).pool.connection() as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute(
            _HEAT_CELLS,
            {"cell": cell_m, "m": M_PER_DEG, "site": site_id, "start": start, "end": end},
        )
        cells = [_cell(r) for r in await cur.fetchall()]
        await cur.execute(_WORK_POINTS, (site_id, end, start))
        points = [_jsonable(r) for r in await cur.fetchall()]
    return {
        "site_id": site_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "cell_m": cell_m,
        "cells": cells,
        "work_points": points,
    }


def _cell(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "lat": round(float(row["lat"]), 7),
        "lon": round(float(row["lon"]), 7),
        "samples": int(row["samples"]),
        "devices": int(row["devices"]),
    }


# Cells are squares of cell_m in a local metric grid (longitude scaled by cos latitude).
_HEAT_CELLS = """
WITH pts AS (
    SELECT t.device_id, t.lat, t.lon,
           floor(t.lat * %(m)s / %(cell)s) AS gy,
           floor(t.lon * cos(radians(t.lat)) * %(m)s / %(cell)s) AS gx
      FROM telemetry t JOIN devices d USING (device_id)
     WHERE d.site_id = %(site)s AND t.ts >= %(start)s AND t.ts < %(end)s
       AND t.lat IS NOT NULL AND t.lon IS NOT NULL
)
SELECT avg(lat) AS lat, avg(lon) AS lon, count(*) AS samples,
       count(DISTINCT device_id) AS devices
  FROM pts GROUP BY gy, gx ORDER BY samples DESC LIMIT 5000
"""

_WORK_POINTS = """
SELECT permit_id, number, type, level, state, lat, lon, planned_start, planned_end,
       coalesce((fields->>'work_area_radius_m')::float, NULL) AS radius_m
  FROM permits
 WHERE site_id = %s AND planned_start < %s AND planned_end > %s
   AND submitted_at IS NOT NULL AND state <> 'cancelled'
 ORDER BY planned_start
"""


# -- the supervisor's phone ----------------------------------------------------------------------


@router.get("/me/permits", responses=ERRORS, tags=["permits"])
async def my_permits(request: Request, user: Anyone) -> list[dict[str, Any]]:
    """Live permits (approved, active, suspended) the caller watches, applied for, coordinates
    or works on; a supervisor, safety officer or control room also gets every live permit of
    their sites (``involvement``: watcher / applicant / coordinator / crew / site)."""
    site_wide = bool(user.roles & {Role.SUPERVISOR, Role.SAFETY, Role.CONTROL_ROOM})
    async with (
        runtime(request).pool.connection() as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute(
            _MY_PERMITS,
            {
                "me": user.username,
                "worker": user.worker_id,
                "states": list(LIVE_STATES),
                "sites": user.site_filter(),
                "site_wide": site_wide,
            },
        )
        rows = await cur.fetchall()
    return [_jsonable(r) for r in rows]


_MY_PERMITS = """
SELECT p.permit_id, p.number, p.site_id, p.type, p.level, p.state, p.title, p.watcher,
       p.applicant, p.planned_start, p.planned_end, p.activated_at, p.suspended_at,
       p.suspend_reason, p.location_text, p.lat, p.lon,
       (SELECT name FROM permit_users u WHERE u.user_id = p.watcher) AS watcher_name,
       coalesce((SELECT json_agg(json_build_object('worker_id', w.worker_id, 'name', k.name)
                                 ORDER BY w.worker_id)
                   FROM permit_workers w JOIN workers k USING (worker_id)
                  WHERE w.permit_id = p.permit_id), '[]'::json) AS workers,
       CASE WHEN p.watcher = %(me)s THEN 'watcher'
            WHEN p.applicant = %(me)s THEN 'applicant'
            WHEN p.coordinator = %(me)s THEN 'coordinator'
            WHEN EXISTS (SELECT 1 FROM permit_workers w
                          WHERE w.permit_id = p.permit_id AND w.worker_id = %(worker)s)
                 THEN 'crew'
            ELSE 'site' END AS involvement
  FROM permits p
 WHERE p.state = ANY(%(states)s)
   AND (%(sites)s::text[] IS NULL OR p.site_id = ANY(%(sites)s))
   AND (p.watcher = %(me)s OR p.applicant = %(me)s OR p.coordinator = %(me)s
        OR EXISTS (SELECT 1 FROM permit_workers w
                    WHERE w.permit_id = p.permit_id AND w.worker_id = %(worker)s)
        OR %(site_wide)s)
 ORDER BY p.planned_end
"""
