"""The tamper-evident trail: every action is an entry whose hash covers the previous hash.

``hash = sha256(prev_hash + "\\n" + body)`` where ``body`` is the canonical JSON (sorted keys)
of the entry: seq, time, actor, action, permit and data. Appends are serialised by a
transaction-level advisory lock, so the chain has one order. The database refuses UPDATE,
DELETE and TRUNCATE of the table (migration 0003); `verify` detects what a superuser could
still change behind the application's back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row

GENESIS = "0" * 64
_LOCK_KEY = 0x70705F61756469  # 'pp_audi': one chain, one writer at a time


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: dt.datetime
    actor: str
    action: str
    permit_id: uuid.UUID | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Result of checking the chain: ``ok`` or where it first breaks and why."""

    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


def canonical(
    *, seq: int, at: dt.datetime, actor: str, action: str, permit_id: uuid.UUID | None, data: Any
) -> str:
    """The body text that is hashed and stored."""
    doc = {
        "seq": seq,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "permit_id": str(permit_id) if permit_id else None,
        "data": data,
    }
    return orjson.dumps(
        doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str
    ).decode()


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


async def append(
    conn: AsyncConnection[Any],
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    permit_id: uuid.UUID | None,
    data: Mapping[str, Any],
) -> AuditEntry:
    """Append one entry inside the caller's transaction (the lock is held until it ends)."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    cur = await conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    last = await cur.fetchone()
    seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    body = canonical(seq=seq, at=at, actor=actor, action=action, permit_id=permit_id, data=data)
    digest = chain_hash(prev, body)
    await conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, permit_id, body, prev_hash, hash)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (seq, at, actor, action, permit_id, body, prev, digest),
    )
    return AuditEntry(seq, at, actor, action, permit_id, dict(data), prev, digest)


async def verify(conn: AsyncConnection[Any], *, batch: int = 5000) -> AuditReport:
    """Walk the whole chain in order and report the first entry that does not hold."""
    prev = GENESIS
    expected = 1
    count = 0
    async with conn.cursor(name="audit_verify", row_factory=dict_row) as cur:
        cur.itersize = batch
        await cur.execute(
            "SELECT seq, at, actor, action, permit_id, body, prev_hash, hash"
            " FROM audit_log ORDER BY seq"
        )
        async for row in cur:
            problem = _check_row(row, expected, prev)
            if problem:
                return AuditReport(
                    False, count, prev, first_bad_seq=int(row["seq"]), reason=problem
                )
            prev = row["hash"]
            expected += 1
            count += 1
    return AuditReport(True, count, prev)


def _check_row(row: Mapping[str, Any], expected_seq: int, prev: str) -> str | None:
    if row["seq"] != expected_seq:
        return f"sequence gap: expected {expected_seq}, found {row['seq']} (entries removed)"
    if row["prev_hash"] != prev:
        return "prev_hash does not match the previous entry's hash"
    if chain_hash(prev, row["body"]) != row["hash"]:
        return "hash does not match the entry's body (body altered)"
    try:
        body = orjson.loads(row["body"])
    except orjson.JSONDecodeError:
        return "body is not JSON"
    columns = canonical(
        seq=row["seq"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        permit_id=row["permit_id"],
        data=body.get("data"),
    )
    if orjson.loads(columns) != body:
        return "columns differ from the hashed body (columns altered)"
    return None


async def entries(
    conn: AsyncConnection[Any],
    *,
    permit_id: uuid.UUID | None = None,
    actor: str | None = None,
    action: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """Trail entries matching every given filter, oldest first."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    for column, value in (("permit_id", permit_id), ("actor", actor), ("action", action)):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    if start is not None:
        where.append("at >= %s")
        args.append(start)
    if end is not None:
        where.append("at < %s")
        args.append(end)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT seq, at, actor, action, permit_id, body, prev_hash, hash FROM audit_log"
            f" WHERE {' AND '.join(where)} ORDER BY seq LIMIT %s",
            (*args, limit),
        )
        rows = await cur.fetchall()
    return [
        AuditEntry(
            seq=r["seq"],
            at=r["at"],
            actor=r["actor"],
            action=r["action"],
            permit_id=r["permit_id"],
            data=orjson.loads(r["body"]).get("data") or {},
            prev_hash=r["prev_hash"],
            hash=r["hash"],
        )
        for r in rows
    ]
