"""Detector catch-up after a restart (`permits.enforcement.catchup`): samples stored but never
seen by the detectors — a SIGKILL between the commit and the detector hook, or after the last
snapshot — are fed to them when the service starts again, so their incident still leads to
its action, and a decision already taken is not taken twice."""

from __future__ import annotations

import datetime as dt

import numpy as np
import psycopg
from psycopg.rows import tuple_row

from api.settings import DatabaseSettings, Settings
from api.storage import open_pool
from detectors import DetectorPipeline, DetectorSettings
from ingest.wire import SampleBatch
from ingest.writer import TelemetryWriter
from permits.enforcement.catchup import last_seen_ms, to_batch, unseen
from tests.factories import now_ms, samples
from tests.permits.enforcement.test_live_enforcement import (
    FAST,
    SITE,
    offset,
    running_plant,
    series,
    until,
)


async def _store(database_url: str, batch: SampleBatch) -> None:
    """Straight into the table, past the detectors: what a crash after the commit leaves."""
    async with open_pool(DatabaseSettings(pool_max=2), database_url) as pool:
        writer = TelemetryWriter(pool)
        await writer.write(batch, sites=[SITE] * len(batch.devices))
        await writer.close()


def test_to_batch_rows_become_columns_with_null_as_nan() -> None:
    """Rows as the query returns them become a batch: devices indexed, nulls NaN."""
    row = ("a", 1, 1000, 80.0, 33.0, None, 30.1, 121.2, 4.0, 0.2, 90.0, 1)
    batch = to_batch([row, ("b", 7, 2000, *row[3:11], 0), (*row[:1], 2, 3000, *row[3:])])
    assert batch.devices == ("a", "b")
    assert batch.dev.tolist() == [0, 1, 0]
    assert batch.ts_ms.tolist() == [1000, 2000, 3000]
    assert np.isnan(batch.spo2).all()
    assert batch.flags.tolist() == [1, 0, 1]


async def test_unseen_returns_only_samples_not_older_than_each_devices_newest_seen(
    database_url: str,
) -> None:
    """A device the detectors saw up to t gets its samples from t on; an unknown device
    everything from the floor on; time order across devices."""
    t0 = now_ms() - 60_000
    await _store(
        database_url,
        SampleBatch.from_samples(samples("a", 10, start_ms=t0) + samples("b", 5, start_ms=t0)),
    )
    pipeline = DetectorPipeline(DetectorSettings())
    pipeline.process(SampleBatch.from_samples(samples("a", 6, start_ms=t0)), t0 + 6_000)
    last = last_seen_ms(pipeline)
    assert last == {"a": t0 + 5_000}
    floor = SampleBatch.from_samples(samples("a", 1, start_ms=t0 - 3_600_000))
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=tuple_row) as conn:
        got = [b async for b in unseen(conn, last_ms=last, floor=_dt(int(floor.ts_ms[0])))]
    rows = sorted(
        (b.devices[d], int(s)) for b in got for d, s in zip(b.dev.tolist(), b.seq, strict=True)
    )
    assert rows == [("a", s) for s in range(6, 11)] + [("b", s) for s in range(1, 6)]
    assert all(np.all(np.diff(b.ts_ms) >= 0) for b in got)


def _dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


async def test_watcher_away_stored_but_never_detected_is_acted_on_after_restart_once(
    settings: Settings,
) -> None:
    """The watcher's walk-away samples are stored while no detector sees them (as after a
    SIGKILL); the next instance catches up and suspends the permit; a further restart that
    re-reads the same samples takes no second decision."""
    s = settings.model_copy(update={"enforcement": FAST})
    async with running_plant(s) as plant:
        gc = plant.permits["GC-0817"]
        lat, lon = offset(*plant.area("GC-0817"), 100)
    assert s.database.url
    await _store(s.database.url, SampleBatch.from_samples(series("ww-gc-w", 40, lat=lat, lon=lon)))
    suspend = "SELECT count(*) FROM decisions WHERE rule_id = 'watcher-away-suspend'"
    async with running_plant(s) as again:
        await until(lambda: again.rows(suspend) == [(1,)], timeout_s=20, what="decision")
        assert again.rt.enforcement.stats.caught_up_samples >= 40
        permit = await again.rt.permits.get(gc.permit_id)
        assert (str(permit.state), permit.suspend_reason) == ("suspended", "watcher_away")
    with psycopg.connect(s.database.url) as conn:
        conn.execute("DELETE FROM detector_snapshots")  # forget: the samples are read again
    async with running_plant(s) as third:
        assert third.rt.enforcement.stats.caught_up_samples >= 40
        assert third.rows(suspend) == [(1,)]
