"""Detector state survives a restart: pipeline snapshots and their database table."""

from __future__ import annotations

import numpy as np
import orjson
import psycopg
import pytest

from detectors.config import DetectorSettings
from detectors.errors import SnapshotError
from detectors.models import Geofence, WorkerProfile
from detectors.pipeline import SNAPSHOT_VERSION, DetectorPipeline
from detectors.repository import load_snapshot, restore_pipeline, save_snapshot
from tests.detectors.conftest import DEVICE, run
from tests.detectors.naive import Series
from tests.detectors.strategies import seeded

S = DetectorSettings(drift_warmup_minutes=5, minute_min_samples=2)
FENCE = Geofence("P1", 30.7395, 121.3442, 40.0, (DEVICE,), None)


def _halves(x: Series) -> tuple[Series, Series]:
    h = len(x.ts) // 2
    cut = {k: getattr(x, k) for k in x.__dataclass_fields__}
    return Series(**{k: v[:h] for k, v in cut.items()}), Series(
        **{k: v[h:] for k, v in cut.items()}
    )


def test_snapshot_restore_continues_exactly_as_uninterrupted() -> None:
    """Core temperature, baselines and open alarms resume after a restore, event for event."""
    x = seeded(11)
    a, b = _halves(x)
    profile = WorkerProfile("w-1", age=35, acclimatized=True, resting_hr=58.0)
    whole, _, ev_whole = run(x, S, cuts=[len(a.ts)], profile=profile, fences=[FENCE])
    first, _, ev_a = run(a, S, profile=profile, fences=[FENCE])
    data = first.snapshot()
    second = DetectorPipeline(S)
    second.restore(data)
    _, _, ev_b = run(b, pipeline=second)
    assert ev_a + ev_b == ev_whole
    assert orjson.dumps(second.scores(DEVICE)) == orjson.dumps(whole.scores(DEVICE))
    assert second.worker_of(DEVICE) == "w-1"
    assert second.book.to_json() == whole.book.to_json()


def test_snapshot_keeps_core_temp_estimate_not_reset() -> None:
    """A restored pipeline keeps a worker's warmed core-temperature estimate (not 37.0)."""
    x = Series.make(
        1_717_200_000_000 + np.arange(0, 1800_000, 2000),
        hr=np.full(900, 150.0) + np.arange(900) % 2,
    )
    p, _, _ = run(x, S)
    ct = p.scores(DEVICE)["core_temp.ct"]
    assert ct > 37.3
    q = DetectorPipeline(S)
    q.restore(p.snapshot())
    assert q.scores(DEVICE)["core_temp.ct"] == ct


@pytest.mark.parametrize("data", [b"", b"not a snapshot", b"PK\x03\x04garbage"])
def test_snapshot_restore_garbage_raises_snapshot_error(data: bytes) -> None:
    """Bytes that are not a snapshot are refused with SnapshotError, state untouched."""
    p = DetectorPipeline(S)
    p.slot("keep-me")
    with pytest.raises(SnapshotError):
        p.restore(data)
    assert p.devices == ["keep-me"]


async def test_snapshot_repository_round_trip_real_database(database_url: str) -> None:
    """save_snapshot/load_snapshot store the latest snapshot per shard in PostgreSQL."""
    x = seeded(12)
    p, _, _ = run(x, S, fences=[FENCE])
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await load_snapshot(conn=conn, shard="site-a:0") is None
        saved = await save_snapshot(conn=conn, shard="site-a:0", pipeline=p)
        again = await save_snapshot(conn=conn, shard="site-a:0", pipeline=p)  # upsert
        loaded = await load_snapshot(conn=conn, shard="site-a:0")
        assert loaded is not None
        assert loaded.data == saved.data
        assert (loaded.devices, loaded.samples, loaded.version) == (1, len(x.ts), SNAPSHOT_VERSION)
        assert again.saved_at >= saved.saved_at
        fresh = DetectorPipeline(S)
        assert await restore_pipeline(conn=conn, shard="site-a:0", pipeline=fresh)
        assert orjson.dumps(fresh.scores(DEVICE)) == orjson.dumps(p.scores(DEVICE))
        cur = await conn.execute("SELECT count(*) FROM detector_snapshots")
        assert (await cur.fetchone()) == (1,)


async def test_snapshot_table_refuses_illegal_rows(database_url: str) -> None:
    """Constraints: empty snapshot, bad checksum length and bad shard names are refused."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for shard, blob, digest in [
            ("ok", b"", b"x" * 32),
            ("ok", b"x", b"short"),
            (" bad", b"x", b"x" * 32),
        ]:
            with pytest.raises(psycopg.errors.CheckViolation):
                await conn.execute(
                    "INSERT INTO detector_snapshots "
                    "(shard, version, devices, samples, snapshot, sha256) "
                    "VALUES (%s, 1, 0, 0, %s, %s)",
                    (shard, blob, digest),
                )


async def test_snapshot_corrupted_in_database_raises(database_url: str) -> None:
    """A snapshot whose bytes no longer match their checksum is refused on load."""
    p = DetectorPipeline(S)
    p.slot("d")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await save_snapshot(conn=conn, shard="s", pipeline=p)
        await conn.execute("UPDATE detector_snapshots SET snapshot = snapshot || '\\x00'::bytea")
        with pytest.raises(SnapshotError, match="checksum"):
            await load_snapshot(conn=conn, shard="s")
