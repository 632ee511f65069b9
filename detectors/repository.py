"""Detector snapshots in PostgreSQL (table ``detector_snapshots``, migration 0004)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import psycopg

from detectors.errors import SnapshotError
from detectors.pipeline import SNAPSHOT_VERSION, DetectorPipeline


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A snapshot row as read back."""

    shard: str
    version: int
    devices: int
    samples: int
    data: bytes
    saved_at: datetime


async def save_snapshot(
    *, conn: psycopg.AsyncConnection, shard: str, pipeline: DetectorPipeline
) -> StoredSnapshot:
    """Store ``pipeline``'s state as the shard's latest snapshot (replacing the previous one)."""
    data = pipeline.snapshot()
    cur = await conn.execute(
        """
        INSERT INTO detector_snapshots (shard, version, devices, samples, snapshot, sha256)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (shard) DO UPDATE SET
            version = EXCLUDED.version, devices = EXCLUDED.devices,
            samples = EXCLUDED.samples, snapshot = EXCLUDED.snapshot,
            sha256 = EXCLUDED.sha256, saved_at = now()
        RETURNING saved_at
        """,
        (
            shard,
            SNAPSHOT_VERSION,
            len(pipeline.devices),
            pipeline.samples_seen,
            data,
            hashlib.sha256(data).digest(),
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return StoredSnapshot(
        shard, SNAPSHOT_VERSION, len(pipeline.devices), pipeline.samples_seen, data, row[0]
    )


async def load_snapshot(*, conn: psycopg.AsyncConnection, shard: str) -> StoredSnapshot | None:
    """The shard's latest snapshot, or None when it has none.

    Raises:
        SnapshotError: when the stored bytes do not match their checksum.
    """
    cur = await conn.execute(
        "SELECT version, devices, samples, snapshot, sha256, saved_at "
        "FROM detector_snapshots WHERE shard = %s",
        (shard,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    version, devices, samples, data, digest, saved_at = row
    data = bytes(data)
    if hashlib.sha256(data).digest() != bytes(digest):
        raise SnapshotError(f"checksum mismatch for shard {shard!r}")
    return StoredSnapshot(shard, int(version), int(devices), int(samples), data, saved_at)


async def restore_pipeline(
    *, conn: psycopg.AsyncConnection, shard: str, pipeline: DetectorPipeline
) -> bool:
    """Load the shard's snapshot into ``pipeline``; False when there is none."""
    stored = await load_snapshot(conn=conn, shard=shard)
    if stored is None:
        return False
    pipeline.restore(stored.data)
    return True
