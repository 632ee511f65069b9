"""Telemetry reads: latest sample of a device, samples in a window."""

from __future__ import annotations

import datetime as dt

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.auth.models import Principal, Role
from api.errors import InvalidQueryError, NotFoundError, PermissionDeniedError
from api.schemas import SampleRead, TelemetryPage

#: Roles that read any device's telemetry on their sites; a worker reads only their own device.
READ_TELEMETRY = frozenset(
    {Role.CONTROL_ROOM, Role.SUPERVISOR, Role.WATCHER, Role.SAFETY, Role.ADMIN}
)

_SELECT = (
    "SELECT device_id, seq, ts, (extract(epoch FROM ts) * 1000)::bigint AS ts_ms, hr, skin_temp,"
    " spo2, lat, lon, gps_acc, motion, battery, flags, received_at FROM telemetry"
)


async def authorize_device(pool: AsyncConnectionPool, user: Principal, device_id: str) -> None:
    """Raise unless ``user`` may read ``device_id``: `NotFoundError` for an unknown device,
    `SiteForbiddenError` for a device of another site, `PermissionDeniedError` for a worker asking
    for somebody else's device."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT site_id, worker_id FROM devices WHERE device_id = %s", (device_id,)
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError("device", device_id)
    site_id, worker_id = row
    user.check_site(site_id)
    if user.has_any(READ_TELEMETRY):
        return
    if not (Role.WORKER in user.roles and worker_id and worker_id == user.worker_id):
        raise PermissionDeniedError(user.username, READ_TELEMETRY)


async def latest(pool: AsyncConnectionPool, device_id: str) -> SampleRead:
    """The newest sample (by device time) of ``device_id``."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{_SELECT} WHERE device_id = %s ORDER BY ts DESC, seq DESC LIMIT 1", (device_id,)
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError("device", device_id)
    return SampleRead.model_validate(row)


def check_window(start: dt.datetime, end: dt.datetime, max_window: dt.timedelta) -> None:
    """Raise `InvalidQueryError` for a window without zones, empty or longer than allowed."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidQueryError("start and end need a time zone (e.g. 2026-11-29T08:00:00+08:00)")
    if end <= start:
        raise InvalidQueryError("end must be after start")
    if end - start > max_window:
        raise InvalidQueryError(f"window longer than {max_window}; ask for less")


async def window(
    pool: AsyncConnectionPool,
    *,
    device_id: str,
    start: dt.datetime,
    end: dt.datetime,
    limit: int,
    max_window: dt.timedelta,
) -> TelemetryPage:
    """Samples of ``device_id`` with ``start <= ts < end``, oldest first, at most ``limit``."""
    check_window(start, end, max_window)
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{_SELECT} WHERE device_id = %s AND ts >= %s AND ts < %s ORDER BY ts, seq LIMIT %s",
            (device_id, start, end, limit + 1),
        )
        rows = await cur.fetchall()
        if not rows:
            await cur.execute("SELECT 1 FROM devices WHERE device_id = %s", (device_id,))
            if await cur.fetchone() is None:
                raise NotFoundError("device", device_id)
    truncated = len(rows) > limit
    samples = [SampleRead.model_validate(r) for r in rows[:limit]]
    return TelemetryPage(
        device_id=device_id,
        start=start,
        end=end,
        count=len(samples),
        truncated=truncated,
        samples=samples,
    )
