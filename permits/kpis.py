"""Key figures of the permit system (SPEC §6): approval lead time, share of high-risk
permits, repeat violations by worker and crew, alarms per permit-hour."""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

from psycopg.rows import dict_row

from permits.repository import Conn
from permits.schemas import KpiRead, RepeatViolatorRead

#: High-risk permits: 特级/一级 hot work, confined space, height Ⅲ/Ⅳ, 一级 lifting.
HIGH_RISK_SQL = """(
    (type = 'DH' AND level IN ('special', '1')) OR type = 'SX'
    OR (type = 'GC' AND level IN ('III', 'IV')) OR (type = 'DZ' AND level = '1'))"""


async def _rows(conn: Conn, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return await cur.fetchall()


def _site(site_id: str | None, alias: str = "") -> tuple[str, tuple[Any, ...]]:
    if site_id is None:
        return "TRUE", ()
    return f"{alias}site_id = %s", (site_id,)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


async def compute(
    conn: Conn,
    *,
    site_id: str | None,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    repeat_min: int = 2,
) -> KpiRead:
    """The KPIs over ``[start, end)`` (permits submitted, violations and alarms in it)."""
    where, args = _site(site_id)
    submitted = await _rows(
        conn,
        f"SELECT {HIGH_RISK_SQL} AS high_risk, extract(epoch FROM approved_at - submitted_at)"
        f" / 60.0 AS lead_min FROM permits WHERE {where} AND submitted_at >= %s"
        " AND submitted_at < %s",
        (*args, start, end),
    )
    leads = [float(r["lead_min"]) for r in submitted if r["lead_min"] is not None]
    lead: dict[str, float | None] = {
        "mean": round(statistics.fmean(leads), 2) if leads else None,
        "median": round(statistics.median(leads), 2) if leads else None,
        "p90": round(_quantile(leads, 0.9), 2) if leads else None,
        "n": float(len(leads)),
    }
    high = sum(1 for r in submitted if r["high_risk"])
    by_worker, by_crew = await _repeat_violations(conn, site_id, start, end, repeat_min)
    alarms, hours = await _alarm_rate(conn, site_id, start, end, now)
    return KpiRead(
        site_id=site_id,
        start=start,
        end=end,
        permits=len(submitted),
        approval_lead_time_min=lead,
        high_risk_share=round(high / len(submitted), 4) if submitted else None,
        repeat_violations_by_worker=by_worker,
        repeat_violations_by_crew=by_crew,
        alarms=alarms,
        permit_hours=round(hours, 3),
        alarms_per_permit_hour=round(alarms / hours, 4) if hours > 0 else None,
    )


async def _repeat_violations(
    conn: Conn, site_id: str | None, start: dt.datetime, end: dt.datetime, repeat_min: int
) -> tuple[list[RepeatViolatorRead], list[RepeatViolatorRead]]:
    where, args = _site(site_id, "p.")
    rows = await _rows(
        conn,
        "SELECT coalesce(v.worker_id, u.worker_id, v.user_id) AS who, w.crew AS crew, v.rule"
        " FROM permit_violations v JOIN permits p USING (permit_id)"
        " LEFT JOIN permit_users u ON u.user_id = v.user_id"
        " LEFT JOIN workers w ON w.worker_id = coalesce(v.worker_id, u.worker_id)"
        f" WHERE {where} AND v.at >= %s AND v.at < %s",
        (*args, start, end),
    )

    def group(key: str) -> list[RepeatViolatorRead]:
        counts: dict[str, list[str]] = {}
        for r in rows:
            if r[key]:
                counts.setdefault(str(r[key]), []).append(str(r["rule"]))
        return sorted(
            (
                RepeatViolatorRead(key=k, violations=len(v), rules=sorted(set(v)))
                for k, v in counts.items()
                if len(v) >= repeat_min
            ),
            key=lambda x: (-x.violations, x.key),
        )

    return group("who"), group("crew")


async def _alarm_rate(
    conn: Conn, site_id: str | None, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> tuple[int, float]:
    """Alarms during permits and the active permit-hours, both within the window."""
    where, args = _site(site_id, "p.")
    alarm_rows = await _rows(
        conn,
        "SELECT count(*) AS n FROM permit_events e JOIN permits p USING (permit_id)"
        f" WHERE {where} AND e.kind = 'alarm' AND e.at >= %s AND e.at < %s",
        (*args, start, end),
    )
    hour_rows = await _rows(
        conn,
        "SELECT coalesce(sum(extract(epoch FROM least(coalesce(p.completed_at, p.ended_at, %s), %s)"
        " - greatest(p.activated_at, %s))), 0) / 3600.0 AS hours FROM permits p"
        f" WHERE {where} AND p.activated_at IS NOT NULL AND p.activated_at < %s"
        " AND coalesce(p.completed_at, p.ended_at, %s) > %s",
        (now, end, start, *args, end, now, start),
    )
    return int(alarm_rows[0]["n"]), float(hour_rows[0]["hours"])
