"""The telemetry writer: one transaction per micro-batch — partitions, devices, samples, dead
letters.

Samples go in by binary COPY straight into ``telemetry`` (the fast path: COPY speed, and every
row is known to be new). Only when that meets a row already stored (a redelivery after a crash
or reconnect, a device replaying) is the transaction redone on the merge path: COPY into a
staging table, ``INSERT … ON CONFLICT DO NOTHING``, and ``RETURNING`` to learn which samples
were new — so the detectors never see a sample twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import AsyncConnection, errors, sql
from psycopg_pool import AsyncConnectionPool

from ingest.pgcopy import STAGE_COLUMNS, TELEMETRY_COLUMNS, stage_copy, telemetry_copy
from ingest.wire import MEASUREMENTS, SampleBatch

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_STAGE = "pp_telemetry_stage"
_COPY_TELEMETRY = sql.SQL("COPY telemetry ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.SQL(", ").join(map(sql.Identifier, TELEMETRY_COLUMNS))
)
_CREATE_STAGE = sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
    sql.Identifier(_STAGE),
    sql.SQL(", ").join(sql.SQL(f"{name} {pg_type}") for name, pg_type in STAGE_COLUMNS),
)
_COPY_STAGE = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(_STAGE))
_MERGE = sql.SQL(
    """WITH ins AS (
         INSERT INTO telemetry ({columns})
         SELECT ts, seq, {measurements}, flags, (%(devices)s::text[])[dev + 1]
           FROM {stage} ORDER BY ts
         ON CONFLICT DO NOTHING
         RETURNING device_id, ts, seq)
       SELECT coalesce(array_agg(s.i), '{{}}')
         FROM ins JOIN {stage} s
           ON s.ts = ins.ts AND s.seq = ins.seq
          AND (%(devices)s::text[])[s.dev + 1] = ins.device_id"""
).format(
    columns=sql.SQL(", ").join(map(sql.Identifier, TELEMETRY_COLUMNS)),
    measurements=sql.SQL(", ").join(sql.SQL(f"NULLIF({m}, 'NaN')") for m in MEASUREMENTS),
    stage=sql.Identifier(_STAGE),
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload (or part of one) that was not stored, and why.

    Attributes:
        kind: the reason's category (a `ingest.errors.RejectKind`), for counting.
    """

    topic: str
    payload: bytes
    reason: str
    sample_index: int | None = None
    kind: str = "structure"


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one committed micro-batch did.

    Attributes:
        stored: the samples that were new (the others were already stored), in batch order.
        merged: True when the batch took the merge path (it met stored rows).
    """

    offered: int
    inserted: int
    dead_letters: int
    stored: SampleBatch
    merged: bool = False

    @property
    def duplicates(self) -> int:
        return self.offered - self.inserted


class TelemetryWriter:
    """Writes micro-batches over one connection of its own; safe to retry a batch (inserts are
    idempotent). A batch that needs nothing but its samples is a single COPY statement (its own
    transaction, one round trip); otherwise one explicit transaction.

    Args:
        pool: where the connection comes from (and goes back to when it breaks or on `close`).
        device_touch_s: how often a device's ``last_seen`` is refreshed.
    """

    def __init__(self, pool: AsyncConnectionPool, *, device_touch_s: float = 60.0) -> None:
        self._pool = pool
        self._touch_s = device_touch_s
        self._conn: AsyncConnection | None = None
        self._days: set[int] = set()
        self._sites: set[str] = set()
        self._devices: dict[str, float] = {}

    async def close(self) -> None:
        """Give the connection back to the pool."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if not conn.closed:
                await conn.set_autocommit(False)
            await self._pool.putconn(conn)

    async def _connection(self) -> AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = None
            conn = await self._pool.getconn()
            try:
                await conn.set_autocommit(True)
            except BaseException:
                await self._pool.putconn(conn)
                raise
            self._conn = conn
        return self._conn

    async def write(
        self,
        batch: SampleBatch,
        *,
        sites: Sequence[str],
        dead_letters: Sequence[DeadLetter] = (),
    ) -> WriteResult:
        """Store ``batch`` (``sites[i]`` is the site of ``batch.devices[i]``) and the dead
        letters atomically.

        Raises:
            psycopg.Error: nothing of the batch is stored; retry it.
        """
        now = time.monotonic()
        conn = await self._connection()
        try:
            try:
                stored, days, sites_new, touched = await self._write(
                    conn, batch, sites, dead_letters, now, merge=False
                )
                merged = False
            except errors.UniqueViolation:
                stored, days, sites_new, touched = await self._write(
                    conn, batch, sites, dead_letters, now, merge=True
                )
                merged = True
        except psycopg.Error:
            if conn.closed or conn.broken:
                self._conn = None
                await self._pool.putconn(conn)
            raise
        # Only what committed may be remembered as done.
        self._days |= days
        self._sites |= sites_new
        self._devices.update(dict.fromkeys(touched, now))
        return WriteResult(
            offered=len(batch),
            inserted=len(stored),
            dead_letters=len(dead_letters),
            stored=stored,
            merged=merged,
        )

    async def _write(
        self,
        conn: AsyncConnection,
        batch: SampleBatch,
        sites: Sequence[str],
        dead_letters: Sequence[DeadLetter],
        now: float,
        *,
        merge: bool,
    ) -> tuple[SampleBatch, set[int], set[str], list[str]]:
        days = set(np.unique(batch.ts_ms // 86_400_000).tolist()) - self._days
        due = self._due_devices(batch, now)
        new_sites = {sites[i] for i in due} - self._sites
        if not (merge or days or due or dead_letters):
            if len(batch):
                async with conn.cursor().copy(_COPY_TELEMETRY) as copy:
                    await copy.write(telemetry_copy(batch))
            return batch, days, new_sites, []
        stored = batch
        async with conn.transaction():
            for day in sorted(days):
                date = (_EPOCH + dt.timedelta(days=day)).date()
                await conn.execute("SELECT pp_ensure_telemetry_partition(%s)", (date,))
            touched = await self._upsert_devices(conn, batch, sites, due, new_sites)
            if merge:
                stored = await self._merge(conn, batch)
            elif len(batch):
                async with conn.cursor().copy(_COPY_TELEMETRY) as copy:
                    await copy.write(telemetry_copy(batch))
            if dead_letters:
                await self._dead_letters(conn, dead_letters)
        return stored, days, new_sites, touched

    def _due_devices(self, batch: SampleBatch, now: float) -> list[int]:
        """Indexes of the devices with samples in ``batch`` to register, or whose
        ``last_seen`` is stale (a device merely named in the table is left alone)."""
        stale = now - self._touch_s
        seen, names = self._devices, batch.devices
        present = np.unique(batch.dev).tolist() if len(names) > 1 else range(len(names))
        return [i for i in present if len(batch) and seen.get(names[i], -1e300) < stale]

    async def _upsert_devices(
        self,
        conn: AsyncConnection,
        batch: SampleBatch,
        sites: Sequence[str],
        due: list[int],
        new_sites: set[str],
    ) -> list[str]:
        if not due:
            return []
        if new_sites:
            await conn.execute(
                "INSERT INTO sites (site_id, name) SELECT s, s FROM unnest(%s::text[]) s "
                "ON CONFLICT DO NOTHING",
                (sorted(new_sites),),
            )
        devices = [batch.devices[i] for i in due]
        await conn.execute(
            "INSERT INTO devices (device_id, site_id) "
            "SELECT * FROM unnest(%s::text[], %s::text[]) "
            "ON CONFLICT (device_id) DO UPDATE SET last_seen = now()",
            (devices, [sites[i] for i in due]),
        )
        return devices

    async def _merge(self, conn: AsyncConnection, batch: SampleBatch) -> SampleBatch:
        """Insert what is new and say which samples those were."""
        await conn.execute(_CREATE_STAGE)
        async with conn.cursor().copy(_COPY_STAGE) as copy:
            await copy.write(stage_copy(batch))
        cur = await conn.execute(_MERGE, {"devices": list(batch.devices)})
        row = await cur.fetchone()
        new = np.zeros(len(batch), dtype=bool)
        if row is not None and row[0]:
            new[np.asarray(row[0], dtype=np.int64)] = True
        return batch.select(new)

    async def _dead_letters(self, conn: AsyncConnection, letters: Sequence[DeadLetter]) -> None:
        async with conn.cursor().copy(
            "COPY dead_letters (topic, payload, reason, sample_index) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "bytea", "text", "int4"])
            for d in letters:
                await copy.write_row((d.topic, d.payload, d.reason, d.sample_index))


def is_data_fault(exc: BaseException) -> bool:
    """True when the database refused the batch's *content* (a value out of range, a failed
    CHECK): retrying the same data cannot succeed, isolating the message that carries it can.
    Anything else (connection lost, server shutting down, a missing table) is retried."""
    return isinstance(exc, psycopg.errors.DataError | psycopg.errors.IntegrityError)
