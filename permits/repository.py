"""SQL ↔ domain records for the permit tables (psycopg 3, async). No rules live here."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from permits.certificates import CertificateClaim, VerificationReport
from permits.models import (
    Actor,
    Approval,
    CheckIn,
    Decision,
    Evidence,
    Finding,
    GasReading,
    GasTest,
    GeoPoint,
    LevelFact,
    Permit,
    PermitState,
    PermitType,
    PermitWorker,
    StepKind,
    SuspendReason,
)

Conn = AsyncConnection[Any]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def _j(obj: Any) -> Jsonb:
    """A jsonb parameter; dates and other non-JSON values are written as text."""
    return Jsonb(obj, dumps=_dumps)


_PERMIT_SELECT = """
SELECT p.*, coalesce((
    SELECT json_agg(json_build_object('worker_id', w.worker_id, 'trade', w.trade)
                    ORDER BY w.worker_id)
      FROM permit_workers w WHERE w.permit_id = p.permit_id), '[]'::json) AS workers
  FROM permits p
"""


def _permit(row: Mapping[str, Any]) -> Permit:
    return Permit(
        permit_id=row["permit_id"],
        number=row["number"],
        site_id=row["site_id"],
        type=PermitType(row["type"]),
        level=row["level"],
        level_facts=tuple(LevelFact(**f) for f in row["level_facts"]),
        state=PermitState(row["state"]),
        template_version=row["template_version"],
        title=row["title"],
        applicant=row["applicant"],
        watcher=row["watcher"],
        workers=tuple(PermitWorker(**w) for w in row["workers"]),
        location=GeoPoint(row["lat"], row["lon"]),
        location_text=row["location_text"],
        fields=row["fields"],
        activities=tuple(row["activities"]),
        risks=tuple(row["risks"]),
        measures=tuple(row["measures"]),
        planned_start=row["planned_start"],
        planned_end=row["planned_end"],
        host_permit_id=row["host_permit_id"],
        coordinator=row["coordinator"],
        round=row["round"],
        version=row["version"],
        created_at=row["created_at"],
        submitted_at=row["submitted_at"],
        approved_at=row["approved_at"],
        activated_at=row["activated_at"],
        suspended_at=row["suspended_at"],
        suspend_reason=SuspendReason(row["suspend_reason"]) if row["suspend_reason"] else None,
        completed_at=row["completed_at"],
        closed_at=row["closed_at"],
        ended_at=row["ended_at"],
    )


def _facts(findings: Iterable[Finding]) -> Jsonb:
    return _j([{"rule": f.rule, "clause": f.clause, "params": dict(f.params)} for f in findings])


async def _rows(conn: Conn, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        return await cur.fetchall()


async def _one(conn: Conn, sql: str, args: Sequence[Any] = ()) -> dict[str, Any] | None:
    rows = await _rows(conn, sql, args)
    return rows[0] if rows else None


# -- users, sites, workers -----------------------------------------------------------------


async def get_actor(conn: Conn, user_id: str) -> Actor | None:
    row = await _one(
        conn,
        "SELECT user_id, name, roles FROM permit_users WHERE user_id = %s AND active",
        (user_id,),
    )
    if row is None:
        return None
    return Actor(user_id=row["user_id"], roles=frozenset(row["roles"]), name=row["name"])


async def upsert_user(
    conn: Conn,
    *,
    user_id: str,
    name: str,
    roles: Sequence[str],
    site_id: str | None = None,
    worker_id: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO permit_users (user_id, name, roles, site_id, worker_id)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET name = EXCLUDED.name,"
        " roles = EXCLUDED.roles, site_id = EXCLUDED.site_id, worker_id = EXCLUDED.worker_id",
        (user_id, name, list(roles), site_id, worker_id),
    )


async def unfit_workers(conn: Conn, worker_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(worker, reason) of the given workers on mandatory rest (rule-engine downgrades)."""
    rows = await _rows(
        conn,
        "SELECT worker_id, reason FROM worker_fitness WHERE NOT fit AND worker_id = ANY(%s)"
        " ORDER BY worker_id",
        (list(worker_ids),),
    )
    return [(str(r["worker_id"]), str(r["reason"])) for r in rows]


async def worker_site(conn: Conn, worker_id: str) -> str | None:
    row = await _one(conn, "SELECT site_id FROM workers WHERE worker_id = %s", (worker_id,))
    return None if row is None else str(row["site_id"])


async def site_timezone(conn: Conn, site_id: str) -> str | None:
    row = await _one(conn, "SELECT timezone FROM sites WHERE site_id = %s", (site_id,))
    return None if row is None else str(row["timezone"])


async def known_workers(conn: Conn, worker_ids: Sequence[str]) -> set[str]:
    rows = await _rows(
        conn, "SELECT worker_id FROM workers WHERE worker_id = ANY(%s)", (list(worker_ids),)
    )
    return {r["worker_id"] for r in rows}


# -- permits ----------------------------------------------------------------------------------


async def next_number(conn: Conn) -> int:
    row = await _one(conn, "SELECT nextval('permit_number_seq') AS n")
    assert row is not None
    return int(row["n"])


async def insert_permit(conn: Conn, p: Permit) -> None:
    await conn.execute(
        """
        INSERT INTO permits (permit_id, number, site_id, type, level, level_facts, state,
            template_version, title, applicant, watcher, lat, lon, location_text, fields,
            activities, risks, measures, planned_start, planned_end, host_permit_id,
            coordinator, created_at)
        VALUES (%s, %s, %s, %s, %s, %s, 'draft', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                %s, %s, %s, %s, %s)
        """,
        (
            p.permit_id,
            p.number,
            p.site_id,
            str(p.type),
            p.level,
            _j([_fact(f) for f in p.level_facts]),
            p.template_version,
            p.title,
            p.applicant,
            p.watcher,
            p.location.lat,
            p.location.lon,
            p.location_text,
            _j(dict(p.fields)),
            list(p.activities),
            list(p.risks),
            list(p.measures),
            p.planned_start,
            p.planned_end,
            p.host_permit_id,
            p.coordinator,
            p.created_at,
        ),
    )
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO permit_workers (permit_id, worker_id, trade) VALUES (%s, %s, %s)",
            [(p.permit_id, w.worker_id, w.trade) for w in p.workers],
        )


def _fact(f: LevelFact) -> dict[str, Any]:
    return {"fact": f.fact, "value": f.value, "effect": f.effect, "clause": f.clause}


async def get_permit(conn: Conn, permit_id: uuid.UUID, *, lock: bool = False) -> Permit | None:
    sql = _PERMIT_SELECT + " WHERE p.permit_id = %s" + (" FOR NO KEY UPDATE OF p" if lock else "")
    row = await _one(conn, sql, (permit_id,))
    return None if row is None else _permit(row)


async def get_permit_by_number(conn: Conn, number: str) -> Permit | None:
    row = await _one(conn, _PERMIT_SELECT + " WHERE p.number = %s", (number,))
    return None if row is None else _permit(row)


async def update_permit(conn: Conn, permit_id: uuid.UUID, **columns: Any) -> None:
    """Set ``columns`` and bump the version (the row is locked by the caller)."""
    names = list(columns)
    sets = "".join(f"{n} = %s, " for n in names)
    await conn.execute(
        f"UPDATE permits SET {sets}version = version + 1 WHERE permit_id = %s",
        (*[columns[n] for n in names], permit_id),
    )


@dataclass(frozen=True, slots=True)
class SearchFilter:
    site_id: str | None = None
    site_ids: Sequence[str] | None = None  # None: any site
    type: str | None = None
    level: str | None = None
    state: str | None = None
    worker_id: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    limit: int = 100
    offset: int = 0


async def search(conn: Conn, f: SearchFilter) -> list[Permit]:
    """Permits matching every given filter; the time range selects overlapping windows."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    for column, value in (
        ("site_id", f.site_id),
        ("type", f.type),
        ("level", f.level),
        ("state", f.state),
    ):
        if value is not None:
            where.append(f"p.{column} = %s")
            args.append(value)
    if f.site_ids is not None:
        where.append("p.site_id = ANY(%s)")
        args.append(list(f.site_ids))
    if f.worker_id is not None:
        where.append(
            "(EXISTS (SELECT 1 FROM permit_workers w WHERE w.permit_id = p.permit_id"
            " AND w.worker_id = %s))"
        )
        args.append(f.worker_id)
    if f.start is not None:
        where.append("p.planned_end > %s")
        args.append(f.start)
    if f.end is not None:
        where.append("p.planned_start < %s")
        args.append(f.end)
    sql = (
        _PERMIT_SELECT
        + f" WHERE {' AND '.join(where)} ORDER BY p.planned_start DESC, p.number LIMIT %s OFFSET %s"
    )
    return [_permit(r) for r in await _rows(conn, sql, (*args, f.limit, f.offset))]


async def live_permits(conn: Conn, site_id: str) -> list[Permit]:
    rows = await _rows(
        conn,
        _PERMIT_SELECT + " WHERE p.site_id = %s AND p.state IN ('active', 'suspended')",
        (site_id,),
    )
    return [_permit(r) for r in rows]


async def hosted_permits(conn: Conn, host_id: uuid.UUID) -> list[Permit]:
    rows = await _rows(
        conn,
        _PERMIT_SELECT + " WHERE p.host_permit_id = %s"
        " AND p.state IN ('approved', 'active', 'suspended') FOR NO KEY UPDATE OF p",
        (host_id,),
    )
    return [_permit(r) for r in rows]


async def permits_to_expire(conn: Conn, now: dt.datetime) -> list[uuid.UUID]:
    rows = await _rows(
        conn,
        "SELECT permit_id FROM permits WHERE state IN ('approved', 'active', 'suspended')"
        " AND planned_end <= %s ORDER BY planned_end",
        (now,),
    )
    return [r["permit_id"] for r in rows]


async def permits_due_soon(conn: Conn, now: dt.datetime, horizon: dt.datetime) -> list[uuid.UUID]:
    rows = await _rows(
        conn,
        "SELECT permit_id FROM permits WHERE state IN ('active', 'suspended')"
        " AND planned_end > %s AND planned_end <= %s AND due_soon_flagged_at IS NULL",
        (now, horizon),
    )
    return [r["permit_id"] for r in rows]


async def active_permits(conn: Conn) -> list[Permit]:
    return [_permit(r) for r in await _rows(conn, _PERMIT_SELECT + " WHERE p.state = 'active'")]


# -- approvals and certificates -----------------------------------------------------------


def _approval(r: Mapping[str, Any]) -> Approval:
    return Approval(
        approval_id=r["approval_id"],
        permit_id=r["permit_id"],
        round=r["round"],
        step=r["step"],
        role=r["role"],
        kind=StepKind(r["kind"]),
        decision=Decision(r["decision"]),
        user_id=r["user_id"],
        signed_at=r["signed_at"],
        point=GeoPoint(r["lat"], r["lon"]),
        distance_m=r["distance_m"],
        comment=r["comment"],
    )


async def approvals(conn: Conn, permit_id: uuid.UUID, round_: int | None = None) -> list[Approval]:
    sql = "SELECT * FROM permit_approvals WHERE permit_id = %s"
    args: list[Any] = [permit_id]
    if round_ is not None:
        sql += " AND round = %s"
        args.append(round_)
    return [_approval(r) for r in await _rows(conn, sql + " ORDER BY approval_id", args)]


async def insert_approval(conn: Conn, a: Approval) -> int:
    row = await _one(
        conn,
        "INSERT INTO permit_approvals (permit_id, round, step, role, kind, decision, user_id,"
        " signed_at, lat, lon, distance_m, comment)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING approval_id",
        (
            a.permit_id,
            a.round,
            a.step,
            a.role,
            str(a.kind),
            str(a.decision),
            a.user_id,
            a.signed_at,
            a.point.lat,
            a.point.lon,
            a.distance_m,
            a.comment,
        ),
    )
    assert row is not None
    return int(row["approval_id"])


async def certificates_of(conn: Conn, worker_id: str, trade: str) -> list[CertificateClaim]:
    rows = await _rows(
        conn,
        "SELECT worker_id, trade, number, issuer, valid_until, review_due FROM certificates"
        " WHERE worker_id = %s AND trade = %s ORDER BY valid_until DESC",
        (worker_id, trade),
    )
    return [CertificateClaim(**r) for r in rows]


async def all_certificates(conn: Conn, worker_id: str) -> list[CertificateClaim]:
    rows = await _rows(
        conn,
        "SELECT worker_id, trade, number, issuer, valid_until, review_due FROM certificates"
        " WHERE worker_id = %s ORDER BY trade, valid_until DESC",
        (worker_id,),
    )
    return [CertificateClaim(**r) for r in rows]


async def insert_certificate(conn: Conn, c: CertificateClaim) -> None:
    await conn.execute(
        "INSERT INTO certificates (worker_id, trade, number, issuer, valid_until, review_due)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (trade, number) DO UPDATE SET"
        " worker_id = EXCLUDED.worker_id, issuer = EXCLUDED.issuer,"
        " valid_until = EXCLUDED.valid_until, review_due = EXCLUDED.review_due",
        (c.worker_id, c.trade, c.number, c.issuer, c.valid_until, c.review_due),
    )


async def insert_certificate_checks(
    conn: Conn,
    permit_id: uuid.UUID,
    phase: str,
    reports: Sequence[VerificationReport],
    approval_id: int | None = None,
) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO certificate_checks (permit_id, approval_id, phase, worker_id, trade,"
            " number, outcome, reason, source, details, checked_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    permit_id,
                    approval_id,
                    phase,
                    r.worker_id,
                    r.trade,
                    r.number or None,
                    str(r.outcome),
                    r.reason,
                    r.source,
                    _j(dict(r.details)),
                    r.checked_at,
                )
                for r in reports
            ],
        )


async def certificate_checks(conn: Conn, permit_id: uuid.UUID) -> list[dict[str, Any]]:
    return await _rows(
        conn,
        "SELECT * FROM certificate_checks WHERE permit_id = %s ORDER BY check_id",
        (permit_id,),
    )


# -- gas tests, check-ins, evidence ----------------------------------------------------------


def _gas(r: Mapping[str, Any]) -> GasTest:
    return GasTest(
        test_id=r["test_id"],
        permit_id=r["permit_id"],
        taken_at=r["taken_at"],
        point=r["point"],
        analyst=r["analyst"],
        o2_pct=r["o2_pct"],
        readings=tuple(GasReading(**x) for x in r["readings"]),
        passed=r["passed"],
        failures=tuple(Finding(x["rule"], x["clause"], x["params"]) for x in r["failures"]),
        recorded_at=r["recorded_at"],
    )


async def insert_gas_test(conn: Conn, t: GasTest, point: GeoPoint | None) -> int:
    row = await _one(
        conn,
        "INSERT INTO gas_tests (permit_id, taken_at, recorded_at, point, lat, lon, analyst,"
        " o2_pct, readings, passed, failures)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING test_id",
        (
            t.permit_id,
            t.taken_at,
            t.recorded_at,
            t.point,
            point.lat if point else None,
            point.lon if point else None,
            t.analyst,
            t.o2_pct,
            _j(
                [
                    {
                        "substance": x.substance,
                        "value": x.value,
                        "unit": x.unit,
                        "lel_pct": x.lel_pct,
                    }
                    for x in t.readings
                ]
            ),
            t.passed,
            _facts(t.failures),
        ),
    )
    assert row is not None
    return int(row["test_id"])


async def gas_tests(conn: Conn, permit_id: uuid.UUID) -> list[GasTest]:
    rows = await _rows(
        conn,
        "SELECT * FROM gas_tests WHERE permit_id = %s ORDER BY taken_at, test_id",
        (permit_id,),
    )
    return [_gas(r) for r in rows]


async def last_gas_test(conn: Conn, permit_id: uuid.UUID) -> GasTest | None:
    row = await _one(
        conn,
        "SELECT * FROM gas_tests WHERE permit_id = %s ORDER BY taken_at DESC, test_id DESC LIMIT 1",
        (permit_id,),
    )
    return None if row is None else _gas(row)


def _checkin(r: Mapping[str, Any]) -> CheckIn:
    return CheckIn(
        checkin_id=r["checkin_id"],
        permit_id=r["permit_id"],
        user_id=r["user_id"],
        at=r["at"],
        point=GeoPoint(r["lat"], r["lon"]),
        accuracy_m=r["accuracy_m"],
        distance_m=r["distance_m"],
        within=r["within"],
        override_by=r["override_by"],
        override_reason=r["override_reason"],
    )


async def insert_checkin(conn: Conn, c: CheckIn) -> int:
    row = await _one(
        conn,
        "INSERT INTO checkins (permit_id, user_id, at, lat, lon, accuracy_m, distance_m, within)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING checkin_id",
        (
            c.permit_id,
            c.user_id,
            c.at,
            c.point.lat,
            c.point.lon,
            c.accuracy_m,
            c.distance_m,
            c.within,
        ),
    )
    assert row is not None
    return int(row["checkin_id"])


async def get_checkin(conn: Conn, permit_id: uuid.UUID, checkin_id: int) -> CheckIn | None:
    row = await _one(
        conn,
        "SELECT * FROM checkins WHERE permit_id = %s AND checkin_id = %s FOR NO KEY UPDATE",
        (permit_id, checkin_id),
    )
    return None if row is None else _checkin(row)


async def override_checkin(
    conn: Conn, checkin_id: int, *, by: str, reason: str, at: dt.datetime
) -> None:
    await conn.execute(
        "UPDATE checkins SET override_by = %s, override_reason = %s, override_at = %s"
        " WHERE checkin_id = %s",
        (by, reason, at, checkin_id),
    )


async def last_checkin(conn: Conn, permit_id: uuid.UUID, user_id: str) -> CheckIn | None:
    row = await _one(
        conn,
        "SELECT * FROM checkins WHERE permit_id = %s AND user_id = %s"
        " ORDER BY at DESC, checkin_id DESC LIMIT 1",
        (permit_id, user_id),
    )
    return None if row is None else _checkin(row)


async def checkins(conn: Conn, permit_id: uuid.UUID) -> list[CheckIn]:
    rows = await _rows(
        conn, "SELECT * FROM checkins WHERE permit_id = %s ORDER BY at, checkin_id", (permit_id,)
    )
    return [_checkin(r) for r in rows]


def _evidence(r: Mapping[str, Any]) -> Evidence:
    return Evidence(
        evidence_id=r["evidence_id"],
        permit_id=r["permit_id"],
        step=r["step"],
        sha256=r["sha256"],
        content_type=r["content_type"],
        size=r["size"],
        uploaded_by=r["uploaded_by"],
        uploaded_at=r["uploaded_at"],
        taken_at=r["taken_at"],
        point=GeoPoint(r["lat"], r["lon"]) if r["lat"] is not None else None,
        place_source=r["place_source"],
    )


async def insert_evidence(conn: Conn, e: Evidence) -> Evidence:
    """Insert, or return the existing record of the same file for the same step."""
    row = await _one(
        conn,
        "INSERT INTO evidence (permit_id, step, sha256, content_type, size, uploaded_by,"
        " uploaded_at, taken_at, lat, lon, place_source)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (permit_id, step, sha256) DO NOTHING RETURNING *",
        (
            e.permit_id,
            e.step,
            e.sha256,
            e.content_type,
            e.size,
            e.uploaded_by,
            e.uploaded_at,
            e.taken_at,
            e.point.lat if e.point else None,
            e.point.lon if e.point else None,
            e.place_source,
        ),
    )
    if row is None:
        row = await _one(
            conn,
            "SELECT * FROM evidence WHERE permit_id = %s AND step = %s AND sha256 = %s",
            (e.permit_id, e.step, e.sha256),
        )
        assert row is not None
    return _evidence(row)


async def evidence_of(conn: Conn, permit_id: uuid.UUID) -> list[Evidence]:
    rows = await _rows(
        conn, "SELECT * FROM evidence WHERE permit_id = %s ORDER BY evidence_id", (permit_id,)
    )
    return [_evidence(r) for r in rows]


async def evidence_counts(conn: Conn, permit_id: uuid.UUID) -> dict[str, int]:
    rows = await _rows(
        conn,
        "SELECT step, count(DISTINCT sha256) AS n FROM evidence WHERE permit_id = %s GROUP BY step",
        (permit_id,),
    )
    return {r["step"]: int(r["n"]) for r in rows}


# -- events and violations -----------------------------------------------------------------


async def insert_event(
    conn: Conn,
    *,
    permit_id: uuid.UUID,
    at: dt.datetime,
    kind: str,
    actor: str,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> int:
    row = await _one(
        conn,
        "INSERT INTO permit_events (permit_id, at, kind, from_state, to_state, actor, reason,"
        " data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING event_id",
        (permit_id, at, kind, from_state, to_state, actor, reason, _j(dict(data or {}))),
    )
    assert row is not None
    return int(row["event_id"])


async def events(conn: Conn, permit_id: uuid.UUID) -> list[dict[str, Any]]:
    return await _rows(
        conn, "SELECT * FROM permit_events WHERE permit_id = %s ORDER BY event_id", (permit_id,)
    )


async def insert_violation(
    conn: Conn,
    *,
    permit_id: uuid.UUID,
    at: dt.datetime,
    finding: Finding,
    user_id: str | None = None,
    worker_id: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO permit_violations (permit_id, at, rule, clause, user_id, worker_id, detail)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (permit_id, at, finding.rule, finding.clause, user_id, worker_id, _j(dict(finding.params))),
    )
