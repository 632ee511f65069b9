"""HTTP and WebSocket routes of enforcement and the control room: alarms, pushes, evacuations,
commands, decisions, devices and the site plan; `/ws/live` and `/ws/supervisor` (thin)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, WebSocket
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.auth import Principal, Role, authenticate_websocket, require_roles
from api.errors import NotFoundError
from api.live import serve_live
from api.runtime import Runtime
from api.schemas import ErrorRead
from api.ws_supervisor import serve_supervisor

router = APIRouter(prefix="/api/v1")
ws_router = APIRouter()
ERRORS: dict[int | str, dict[str, object]] = {c: {"model": ErrorRead} for c in (401, 403, 404, 422)}

WATCHERS = (Role.CONTROL_ROOM, Role.SUPERVISOR, Role.SAFETY, Role.WATCHER, Role.ADMIN)
Watcher = Annotated[Principal, Depends(require_roles(*WATCHERS))]
Anyone = Annotated[Principal, Depends(require_roles(*Role))]
Resolver = Annotated[
    Principal, Depends(require_roles(Role.CONTROL_ROOM, Role.SUPERVISOR, Role.SAFETY, Role.ADMIN))
]


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


class ResolveRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="Why the case is closed.")


class HeadcountRequest(BaseModel):
    device_ids: list[str] | None = Field(
        default=None, description="People counted out; omit to confirm everyone on the list."
    )


async def _device_site(rt: Runtime, device_id: str) -> str:
    site = rt.enforcement.ctx.site_of_device(device_id)
    if site is None:
        async with rt.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT site_id FROM devices WHERE device_id = %s", (device_id,)
            )
            row = await cur.fetchone()
        if row is None:
            raise NotFoundError("device", device_id)
        site = str(row[0])
    return site


# -- alarms -------------------------------------------------------------------------------------


@router.get("/alarms", responses=ERRORS, tags=["alarms"])
async def alarms(
    request: Request,
    user: Watcher,
    active: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Alarms of the caller's sites, newest first (``active``: only those still active)."""
    rt = runtime(request)
    rows = await rt.enforcement.alarms.recent(
        active_only=active, limit=limit, sites=user.site_filter()
    )
    ctx = rt.enforcement.ctx
    return [{**r.to_json(), "site_id": ctx.site_of_device(r.device_id)} for r in rows]


async def _alarm_in_scope(rt: Runtime, user: Principal, alarm_id: int) -> None:
    async with rt.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT d.site_id FROM alarms a JOIN devices d USING (device_id) WHERE a.alarm_id = %s",
            (alarm_id,),
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError("alarm", str(alarm_id))
    user.check_site(str(row[0]))


@router.post("/alarms/{alarm_id}/ack", responses=ERRORS, tags=["alarms"])
async def ack_alarm(request: Request, user: Watcher, alarm_id: int) -> dict[str, Any]:
    """Take the alarm on (idempotent)."""
    rt = runtime(request)
    await _alarm_in_scope(rt, user, alarm_id)
    row = await rt.enforcement.alarms.acknowledge(alarm_id, user=user.username)
    rt.live.publish_event({"type": "alarm", **row.to_json(), "site_id": None})
    return row.to_json()


@router.post("/alarms/{alarm_id}/resolve", responses=ERRORS, tags=["alarms"])
async def resolve_alarm(
    request: Request, user: Resolver, alarm_id: int, body: ResolveRequest
) -> dict[str, Any]:
    """Close the case with the reason."""
    rt = runtime(request)
    await _alarm_in_scope(rt, user, alarm_id)
    row = await rt.enforcement.alarms.resolve(alarm_id, user=user.username, reason=body.reason)
    rt.live.publish_event({"type": "alarm", **row.to_json(), "site_id": None})
    return row.to_json()


# -- pushes -------------------------------------------------------------------------------------


@router.get("/pushes", responses=ERRORS, tags=["pushes"])
async def my_pushes(request: Request, user: Anyone) -> list[dict[str, Any]]:
    """The caller's pushes not yet acknowledged (what a phone shows)."""
    pending = await runtime(request).enforcement.pushes.pending_for(user.username)
    return [p.to_json() for p in pending]


@router.post("/pushes/{push_id}/ack", responses=ERRORS, tags=["pushes"])
async def ack_push(request: Request, user: Anyone, push_id: uuid.UUID) -> dict[str, Any]:
    """Acknowledge one of one's own pushes (also possible over `/ws/supervisor`)."""
    return (await runtime(request).enforcement.pushes.ack(push_id, user.username)).to_json()


# -- evacuations, commands, decisions --------------------------------------------------------


@router.get("/evacuations", responses=ERRORS, tags=["evacuations"])
async def evacuations(
    request: Request, user: Watcher, permit: uuid.UUID | None = None, open_only: bool = True
) -> list[dict[str, Any]]:
    """Evacuations (in progress by default) with each person's status."""
    ev = runtime(request).enforcement.evacuations
    if permit is not None:
        found = await ev.for_permit(permit)
    else:
        found = await ev.open() if open_only else await ev.recent()
    return [
        e.to_json()
        for e in found
        if user.can_access_site(e.site_id) and (not open_only or e.state == "in_progress")
    ]


@router.post("/evacuations/{evacuation_id}/headcount", responses=ERRORS, tags=["evacuations"])
async def headcount(
    request: Request, user: Watcher, evacuation_id: uuid.UUID, body: HeadcountRequest
) -> dict[str, Any]:
    """The watcher's head count: the named people (or everyone) are out of the area."""
    rt = runtime(request)
    evac = await rt.enforcement.evacuations.get(evacuation_id)
    user.check_site(evac.site_id)
    done = await rt.enforcement.evacuations.confirm(
        evacuation_id, devices=body.device_ids, by=user.username
    )
    rt.live.publish_event({"type": "evacuation", **done.to_json()})
    return done.to_json()


@router.get("/commands", responses=ERRORS, tags=["commands"])
async def commands(
    request: Request,
    user: Watcher,
    device: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Device commands, newest first, with their lifecycle state."""
    rt = runtime(request)
    if device is not None:
        user.check_site(await _device_site(rt, device))
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT c.cmd_id, c.device_id, c.action, c.params, c.state, c.attempts, c.decision_id,"
            " c.detail, c.created_at, c.sent_at, c.delivered_at, c.finished_at, d.site_id"
            " FROM device_commands c JOIN devices d USING (device_id)"
            " WHERE (%s::text IS NULL OR c.device_id = %s)"
            " AND (%s::text[] IS NULL OR d.site_id = ANY(%s))"
            " ORDER BY c.created_at DESC LIMIT %s",
            (device, device, user.site_filter(), user.site_filter(), limit),
        )
        return [_jsonable(r) for r in await cur.fetchall()]


@router.get("/decisions", responses=ERRORS, tags=["decisions"])
async def decisions(
    request: Request,
    user: Watcher,
    permit: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Rule-engine decisions with the facts that caused them (explain an incident)."""
    rt = runtime(request)
    if permit is not None:
        user.check_site((await rt.permits.get(permit)).site_id)
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT decision_id, ts, rule_id, reason, permit_id, worker_id, device_ids, actions,"
            " facts FROM decisions WHERE (%s::uuid IS NULL OR permit_id = %s)"
            " ORDER BY decision_id DESC LIMIT %s",
            (permit, permit, limit),
        )
        rows = await cur.fetchall()
    ctx = rt.enforcement.ctx
    out = []
    for r in rows:
        site = ctx.site_of_permit(str(r["permit_id"])) if r["permit_id"] else None
        if site is None and r["device_ids"]:
            site = ctx.site_of_device(r["device_ids"][0])
        if site is None or user.can_access_site(site):
            out.append(_jsonable(r))
    return out


# -- devices and the site plan --------------------------------------------------------------


@router.get("/devices", responses=ERRORS, tags=["telemetry"])
async def devices(request: Request, user: Watcher, site: str | None = None) -> list[dict[str, Any]]:
    """Devices of the caller's sites with their wearer, newest sample and detector estimates
    (core temperature, strain) — the control room's per-worker panel."""
    rt = runtime(request)
    if site is not None:
        user.check_site(site)
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT d.device_id, d.site_id, d.worker_id, w.name AS worker_name, d.kind,"
            " d.last_seen FROM devices d LEFT JOIN workers w USING (worker_id)"
            " WHERE (%s::text IS NULL OR d.site_id = %s)"
            " AND (%s::text[] IS NULL OR d.site_id = ANY(%s))"
            " ORDER BY d.device_id",
            (site, site, user.site_filter(), user.site_filter()),
        )
        rows = await cur.fetchall()
    latest = rt.live.latest()
    ctx = rt.enforcement.ctx
    out = []
    for row in rows:
        out.append(
            {
                **_jsonable(row),
                "fit": ctx.worker_fit(row["worker_id"]),
                "latest": latest.get(row["device_id"]),
                "estimates": rt.enforcement.estimates(row["device_id"]),
                "permits": [p.permit_id for p in ctx.permits_of(row["device_id"])],
            }
        )
    return sorted(out, key=lambda d: d["device_id"])


@router.get("/sites/{site_id}/plan", responses=ERRORS, tags=["telemetry"])
async def site_plan(request: Request, user: Watcher, site_id: str) -> dict[str, Any]:
    """The work areas of the site's live permits (centre, radius, crew, watcher)."""
    user.check_site(site_id)
    ctx = runtime(request).enforcement.ctx
    areas = [
        {
            "permit_id": p.permit_id,
            "type": p.type,
            "level": p.level,
            "state": p.state,
            "lat": p.lat,
            "lon": p.lon,
            "radius_m": p.radius_m,
            "devices": list(p.devices),
            "watcher_device": p.watcher_device,
        }
        for p in ctx.snap.permits.values()
        if ctx.site_of_permit(p.permit_id) == site_id
    ]
    return {"site_id": site_id, "areas": areas}


@router.get("/telemetry/1m", responses=ERRORS, tags=["telemetry"])
async def one_minute(
    request: Request,
    user: Watcher,
    device: str,
    start: dt.datetime,
    end: dt.datetime,
) -> dict[str, Any]:
    """One-minute buckets of a device (history view) with the alarms raised in the window."""
    rt = runtime(request)
    user.check_site(await _device_site(rt, device))
    if end <= start or end - start > dt.timedelta(days=7):
        from api.errors import InvalidQueryError

        raise InvalidQueryError("the window must be positive and at most 7 days")
    async with rt.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT bucket, hr, hr_max, skin_temp, spo2, spo2_min, motion, samples"
            " FROM telemetry_1m WHERE device_id = %s AND bucket >= %s AND bucket < %s"
            " ORDER BY bucket",
            (device, start, end),
        )
        buckets = [_jsonable(r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT alarm_id, kind, severity, peak, state, raised_at, cleared_at FROM alarms"
            " WHERE device_id = %s AND raised_at < %s AND coalesce(cleared_at, now()) >= %s"
            " ORDER BY raised_at",
            (device, end, start),
        )
        marks = [_jsonable(r) for r in await cur.fetchall()]
    return {"device_id": device, "buckets": buckets, "alarms": marks}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dt.datetime):
            out[k] = v.isoformat()
        elif isinstance(v, uuid.UUID):
            out[k] = str(v)
        else:
            out[k] = v
    return out


# -- WebSockets ---------------------------------------------------------------------------------


@ws_router.websocket("/ws/live")
async def live_stream(ws: WebSocket) -> None:
    """The control room's live stream (protocol in `api.live`)."""
    user = await authenticate_websocket(ws, roles=WATCHERS)
    rt: Runtime = ws.app.state.runtime
    allowed = None if user.sites is None else frozenset(user.sites)
    await serve_live(ws, hub=rt.live, allowed_sites=allowed)


@ws_router.websocket("/ws/supervisor")
async def supervisor_stream(ws: WebSocket) -> None:
    """Pushes to the caller's phone with acknowledgement (protocol in `api.ws_supervisor`)."""
    user = await authenticate_websocket(ws, roles=tuple(Role))
    rt: Runtime = ws.app.state.runtime
    await serve_supervisor(ws, user_id=user.username, hub=rt.push_hub, pushes=rt.enforcement.pushes)
