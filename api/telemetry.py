"""Telemetry reads: latest sample of a device, samples in a window."""

from __future__ import annotations

import datetime as dt

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.errors import InvalidQueryError, NotFoundError
from api.schemas import SampleRead, TelemetryPage

_SELECT = (
    "SELECT device_id, seq, ts, (extract(epoch FROM ts) * 1000)::bigint AS ts_ms, hr, skin_temp,"
    " spo2, lat, lon, gps_acc, motion, battery, flags, received_at FROM telemetry"
)


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
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidQueryError("start and end need a time zone (e.g. 2026-11-29T08:00:00+08:00)")
    if end <= start:
        raise InvalidQueryError("end must be after start")
    if end - start > max_window:
        raise InvalidQueryError(f"window longer than {max_window}; ask for less")
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
