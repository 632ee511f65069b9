"""Telemetry retention: drop whole telemetry partitions (or TimescaleDB chunks) older than N
days. Only relations that are partitions of ``telemetry`` are ever candidates: permits, events,
commands and the audit trail (kept at least one year, GB 30871 B.3) cannot be touched."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from api.errors import OperationError

log = logging.getLogger(__name__)

#: Native partitions of ``telemetry`` with their upper bound (NULL for a DEFAULT partition).
_PARTITIONS = r"""
    SELECT c.relname,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound,
           i.inhdetachpending
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE i.inhparent = 'telemetry'::regclass
       AND n.nspname = current_schema()
     ORDER BY upper_bound
"""


@dataclass(frozen=True, slots=True)
class RetentionResult:
    storage_form: str
    cutoff: dt.datetime
    dropped: list[str]
    kept: int


def cutoff_for(days: int, now: dt.datetime | None = None) -> dt.datetime:
    if days < 1:
        raise OperationError("retention", "keep at least one day of telemetry")
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)


def drop_old_telemetry(
    url: str, *, days: int, now: dt.datetime | None = None, dry_run: bool = False
) -> RetentionResult:
    """Drop telemetry partitions whose every row is older than ``days`` days (a partition is
    dropped only when its upper bound is at or before the cutoff)."""
    cutoff = cutoff_for(days, now)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT value FROM pp_meta WHERE key = 'storage_form'").fetchone()
        form = row[0] if row else "unknown"
        if form == "timescaledb":
            return _drop_chunks(conn, cutoff, dry_run)
        if form != "native-partitions":
            raise OperationError("retention", f"unknown telemetry storage form {form!r}")
        parts = conn.execute(_PARTITIONS).fetchall()
        old = [(name, pending) for name, upper, pending in parts if upper and upper <= cutoff]
        if not dry_run:
            conn.execute("SET lock_timeout = '10s'")
            for name, pending in old:
                _detach_and_drop(conn, name, pending)
    dropped = [name for name, _ in old]
    log.info("telemetry retention", extra={"dropped": len(dropped), "cutoff": cutoff.isoformat()})
    return RetentionResult(form, cutoff, dropped, len(parts) - len(dropped))


def _detach_and_drop(conn: psycopg.Connection, name: str, pending: bool) -> None:
    # CONCURRENTLY lets the ingest keep writing to the other partitions meanwhile; an earlier
    # run interrupted half-way left the partition "detach pending": finish that one instead.
    how = "FINALIZE" if pending else "CONCURRENTLY"
    conn.execute(
        sql.SQL("ALTER TABLE telemetry DETACH PARTITION {} {}").format(
            sql.Identifier(name), sql.SQL(how)
        )
    )
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))


def _drop_chunks(conn: psycopg.Connection, cutoff: dt.datetime, dry_run: bool) -> RetentionResult:
    fn = "show_chunks" if dry_run else "drop_chunks"
    rows = conn.execute(
        sql.SQL("SELECT {}('telemetry', older_than => %s)").format(sql.Identifier(fn)), (cutoff,)
    ).fetchall()
    left = conn.execute("SELECT count(*) FROM show_chunks('telemetry')").fetchone()
    kept = int(left[0]) - (len(rows) if dry_run else 0) if left else 0
    return RetentionResult("timescaledb", cutoff, [str(r[0]) for r in rows], kept)
