"""The telemetry writer: one transaction per micro-batch — devices, binary COPY into a staging
table, de-duplicating insert, dead letters."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ingest.wire import SampleBatch

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)
_COLUMNS = (
    "ts", "device_id", "seq", "hr", "skin_temp", "spo2", "lat", "lon", "gps_acc", "motion",
    "battery", "flags",
)  # fmt: skip
_TYPES = (
    "timestamptz", "text", "int8", "float4", "float4", "float4", "float8", "float8", "float4",
    "float4", "float4", "int2",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload (or part of one) that was not stored, and why."""

    topic: str
    payload: bytes
    reason: str
    sample_index: int | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one committed micro-batch did."""

    offered: int
    inserted: int
    dead_letters: int

    @property
    def duplicates(self) -> int:
        return self.offered - self.inserted


class TelemetryWriter:
    """Writes micro-batches; safe to retry a batch (inserts are idempotent)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._days: set[int] = set()

    async def write(
        self,
        batch: SampleBatch,
        *,
        sites: Sequence[str],
        dead_letters: Sequence[DeadLetter] = (),
    ) -> WriteResult:
        """Store ``batch`` (``sites[i]`` is the site of ``batch.devices[i]``) and the dead
        letters in one transaction."""
        async with self._pool.connection() as conn, conn.transaction():
            inserted = 0
            if len(batch):
                await self._ensure_partitions(conn, batch)
                await self._upsert_devices(conn, batch, sites)
                inserted = await self._copy(conn, batch)
            if dead_letters:
                await self._dead_letters(conn, dead_letters)
        return WriteResult(offered=len(batch), inserted=inserted, dead_letters=len(dead_letters))

    async def _ensure_partitions(self, conn: AsyncConnection, batch: SampleBatch) -> None:
        days = set(np.unique(batch.ts_ms // 86_400_000).tolist()) - self._days
        for day in sorted(days):
            date = (_EPOCH + dt.timedelta(days=day)).date()
            await conn.execute("SELECT pp_ensure_telemetry_partition(%s)", (date,))
        self._days |= days

    async def _upsert_devices(
        self, conn: AsyncConnection, batch: SampleBatch, sites: Sequence[str]
    ) -> None:
        present = np.unique(batch.dev)
        devices = [batch.devices[i] for i in present.tolist()]
        dev_sites = [sites[i] for i in present.tolist()]
        await conn.execute(
            "INSERT INTO sites (site_id, name) SELECT s, s FROM unnest(%s::text[]) s "
            "ON CONFLICT DO NOTHING",
            (sorted(set(dev_sites)),),
        )
        await conn.execute(
            "INSERT INTO devices (device_id, site_id) "
            "SELECT * FROM unnest(%s::text[], %s::text[]) "
            "ON CONFLICT (device_id) DO UPDATE SET last_seen = now()",
            (devices, dev_sites),
        )

    async def _copy(self, conn: AsyncConnection, batch: SampleBatch) -> int:
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS telemetry_stage "
            "(LIKE telemetry INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cols = ", ".join(_COLUMNS)
        async with conn.cursor().copy(
            f"COPY telemetry_stage ({cols}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(list(_TYPES))
            for row in _rows(batch):
                await copy.write_row(row)
        cur = await conn.execute(
            f"INSERT INTO telemetry ({cols}) SELECT {cols} FROM telemetry_stage "
            "ORDER BY ts ON CONFLICT DO NOTHING"
        )
        return cur.rowcount

    async def _dead_letters(self, conn: AsyncConnection, letters: Sequence[DeadLetter]) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO dead_letters (topic, payload, reason, sample_index) "
                "VALUES (%s, %s, %s, %s)",
                [(d.topic, d.payload, d.reason, d.sample_index) for d in letters],
            )


def _rows(batch: SampleBatch) -> list[tuple[object, ...]]:
    """Rows for COPY; NaN becomes NULL."""
    ids = batch.device_ids().tolist()
    ts = [_EPOCH + t * _MS for t in batch.ts_ms.tolist()]
    floats = [
        [None if v != v else v for v in getattr(batch, m).tolist()]
        for m in ("hr", "skin_temp", "spo2", "lat", "lon", "gps_acc", "motion", "battery")
    ]
    return list(zip(ts, ids, batch.seq.tolist(), *floats, batch.flags.tolist(), strict=True))
