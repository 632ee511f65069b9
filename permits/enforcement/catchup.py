"""Detector catch-up after a restart: stored samples the restored detector state has not
seen go through the pipeline before any live batch does.

Why: the ingest hands each committed batch to the detectors at most once (a crash between
the commit and the hook skips it; a redelivered sample is a duplicate the writer drops), and
the detector snapshot a restart resumes from is up to ``snapshot_s`` old. Without catching
up, samples stored in that window would never reach a detector, and an incident whose
decisive samples fell in it — the watcher walking away while the service was killed — would
raise no alarm and so produce no action. The pipeline skips samples at or before a device's
newest one, so the overlap with what it has seen is harmless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import psycopg

from detectors import DetectorPipeline
from ingest.wire import MEASUREMENTS, RECORD_DTYPE, SampleBatch

#: Rows per batch handed to the pipeline (a few seconds of a 5 000-device fleet).
CHUNK_ROWS = 50_000

_SELECT = f"""
    SELECT t.device_id, t.seq, (extract(epoch FROM t.ts) * 1000)::int8,
           {", ".join(f"t.{m}" for m in MEASUREMENTS)}, t.flags
      FROM telemetry t
      LEFT JOIN unnest(%(devices)s::text[], %(last)s::timestamptz[]) AS l(device_id, last_ts)
        ON l.device_id = t.device_id
     WHERE t.ts >= %(floor)s AND (l.last_ts IS NULL OR t.ts >= l.last_ts)
     ORDER BY t.ts, t.device_id, t.seq
"""


def last_seen_ms(pipeline: DetectorPipeline) -> dict[str, int]:
    """Each known device's newest sample time the pipeline has processed (ms)."""
    quality = next(d for d in pipeline.detectors if d.name == "quality")
    last = quality.state()["a.last_ts"]
    return {dev: int(last[i]) for i, dev in enumerate(pipeline.devices) if last[i] >= 0}


async def snapshot_saved_at(conn: psycopg.AsyncConnection[Any], shard: str) -> dt.datetime | None:
    """When the shard's snapshot was saved (None: it has none)."""
    cur = await conn.execute("SELECT saved_at FROM detector_snapshots WHERE shard = %s", (shard,))
    row = await cur.fetchone()
    return row[0] if row else None


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


async def unseen(
    conn: psycopg.AsyncConnection[Any], *, last_ms: dict[str, int], floor: dt.datetime
) -> AsyncIterator[SampleBatch]:
    """Stored samples from ``floor`` on that are not older than the device's newest seen
    one (``last_ms``), in time order, in batches of at most `CHUNK_ROWS`."""
    args = {
        "devices": list(last_ms),
        "last": [_ts(v) for v in last_ms.values()],
        "floor": floor,
    }
    async with conn.transaction(), conn.cursor(name="pp_detector_catchup") as cur:
        await cur.execute(_SELECT, args)
        while rows := await cur.fetchmany(CHUNK_ROWS):
            yield to_batch(rows)


def to_batch(rows: Sequence[tuple[Any, ...]]) -> SampleBatch:
    """Telemetry rows (device, seq, ts ms, measurements…, flags) as a batch; null → NaN."""
    index: dict[str, int] = {}
    rec = np.empty(len(rows), dtype=RECORD_DTYPE)
    cols = list(zip(*rows, strict=True))
    rec["dev"] = [index.setdefault(d, len(index)) for d in cols[0]]
    rec["seq"] = cols[1]
    rec["ts_ms"] = cols[2]
    for k, name in enumerate(MEASUREMENTS):
        rec[name] = np.array(cols[3 + k], dtype=np.float64)
    rec["flags"] = cols[3 + len(MEASUREMENTS)]
    return SampleBatch.from_records(tuple(index), rec)
