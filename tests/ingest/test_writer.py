"""The telemetry writer on a real database: COPY path, merge path, atomicity, recovery."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from api.settings import DatabaseSettings
from api.storage import open_pool
from ingest.wire import Sample, SampleBatch
from ingest.writer import DeadLetter, TelemetryWriter, is_data_fault
from tests.factories import now_ms, samples


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    async with open_pool(DatabaseSettings(pool_max=3), database_url) as p:
        yield p


@pytest.fixture
async def writer(pool: AsyncConnectionPool) -> AsyncIterator[TelemetryWriter]:
    w = TelemetryWriter(pool)
    yield w
    await w.close()


def rows(url: str, sql: str = "SELECT count(*) FROM telemetry") -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql))


def _random_samples(rng: random.Random, n: int) -> list[Sample]:
    """Samples with every kind of missing value and device ids of many lengths."""
    devices = ["d", "dev-1", "x" * 64, "gw.7_a", "longer-device-id-42"]
    t0 = now_ms() - 3_600_000
    out = []
    for i in range(n):

        def val(lo: float, hi: float) -> float | None:
            return None if rng.random() < 0.3 else rng.uniform(lo, hi)

        lat = val(-90, 90)
        out.append(
            Sample(
                device_id=rng.choice(devices),
                seq=i,
                ts_ms=t0 + rng.randrange(3_600_000),
                hr=val(30, 220),
                skin_temp=val(20, 40),
                spo2=val(50, 100),
                lat=lat,
                lon=None if lat is None else rng.uniform(-180, 180),
                gps_acc=val(0, 100),
                motion=val(0, 3),
                battery=val(0, 100),
                flags=rng.randrange(8),
            )
        )
    return out


def _stored(url: str) -> list[Sample]:
    got = rows(
        url,
        "SELECT device_id, seq, (extract(epoch FROM ts) * 1000)::bigint, hr, skin_temp, spo2, "
        "lat, lon, gps_acc, motion, battery, flags FROM telemetry ORDER BY seq",
    )
    return [Sample(*r) for r in got]  # type: ignore[arg-type]


def _close(a: list[Sample], b: list[Sample]) -> bool:
    """Equal up to float32 rounding of the real columns."""
    for x, y in zip(a, b, strict=True):
        for f in dataclasses.fields(Sample):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if isinstance(u, float) and isinstance(v, float):
                if abs(u - v) > 1e-5 * max(1.0, abs(v)):
                    return False
            elif u != v:
                return False
    return True


async def test_write_any_missing_values_and_id_lengths_round_trip(
    writer: TelemetryWriter, database_url: str
) -> None:
    """The numpy-built COPY stream stores exactly the samples given; missing is NULL."""
    batch = _random_samples(random.Random(3), 2000)
    result = await writer.write(SampleBatch.from_samples(batch), sites=["s1"] * 5, dead_letters=())
    assert (result.inserted, result.merged) == (2000, False)
    assert _close(_stored(database_url), sorted(batch, key=lambda s: s.seq))
    assert rows(database_url, "SELECT count(*) FROM telemetry WHERE hr IS NULL")[0][0] == sum(
        s.hr is None for s in batch
    )


async def test_write_replayed_batch_takes_merge_path_and_stores_nothing_new(
    writer: TelemetryWriter, database_url: str
) -> None:
    """A redelivered batch changes nothing and reports no new samples."""
    batch = SampleBatch.from_samples(samples("d1", 50))
    await writer.write(batch, sites=["s1"])
    again = await writer.write(batch, sites=["s1"])
    assert (again.inserted, again.duplicates, again.merged, len(again.stored)) == (0, 50, True, 0)
    assert rows(database_url)[0][0] == 50


async def test_write_partly_stored_batch_returns_exactly_the_new_samples(
    writer: TelemetryWriter, database_url: str
) -> None:
    """Overlap with stored rows: the new samples are stored and handed on, the rest skipped."""
    rs = samples("d1", 30) + samples("d2", 10)
    await writer.write(SampleBatch.from_samples(rs[:20]), sites=["s1"])
    result = await writer.write(SampleBatch.from_samples(rs), sites=["s1", "s1"])
    assert result.merged
    assert sorted(result.stored.samples(), key=lambda s: (s.device_id, s.seq)) == rs[20:]
    assert rows(database_url)[0][0] == 40


async def test_write_registers_devices_under_their_sites_and_dead_letters_atomically(
    writer: TelemetryWriter, database_url: str
) -> None:
    """Devices, samples and dead letters commit together."""
    batch = SampleBatch.from_samples(samples("d1", 2) + samples("d2", 2))
    letter = DeadLetter("t/x", b"\x00raw", "why", 3, kind="structure")
    await writer.write(batch, sites=["north", "south"], dead_letters=[letter])
    assert rows(database_url, "SELECT device_id, site_id FROM devices ORDER BY 1") == [
        ("d1", "north"),
        ("d2", "south"),
    ]
    assert rows(database_url, "SELECT topic, payload, reason, sample_index FROM dead_letters") == [
        ("t/x", b"\x00raw", "why", 3)
    ]


async def test_write_refused_content_is_a_data_fault_and_leaves_nothing_behind(
    writer: TelemetryWriter, database_url: str
) -> None:
    """A value the database refuses fails the whole transaction, and is told apart from an
    outage; the writer goes on working afterwards."""
    batch = SampleBatch.from_samples(samples("d1", 5))
    with pytest.raises(psycopg.Error) as exc:
        await writer.write(batch, sites=["not a valid site id"])
    assert is_data_fault(exc.value)
    assert rows(database_url) == [(0,)]
    assert rows(database_url, "SELECT count(*) FROM devices") == [(0,)]
    result = await writer.write(batch, sites=["s1"])
    assert result.inserted == 5


async def test_write_after_its_connection_is_killed_fails_once_then_recovers(
    writer: TelemetryWriter, database_url: str
) -> None:
    """A broken connection is an outage (retry), and the next write gets a new connection."""
    await writer.write(SampleBatch.from_samples(samples("d1", 3)), sites=["s1"])
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    batch = SampleBatch.from_samples(samples("d2", 3))
    with pytest.raises(psycopg.OperationalError) as exc:
        await writer.write(batch, sites=["s1"])
    assert not is_data_fault(exc.value)
    assert (await writer.write(batch, sites=["s1"])).inserted == 3
    assert rows(database_url)[0][0] == 6


async def test_write_part_of_a_batch_registers_only_the_devices_it_has_samples_of(
    writer: TelemetryWriter, database_url: str
) -> None:
    """A batch cut down to some messages keeps the full device table; only devices with
    samples are registered, so a refused device cannot spoil the parts without it."""
    batch = SampleBatch.from_samples(samples("keep", 3) + samples("gone", 3))
    part = batch.select(batch.dev == 0)
    result = await writer.write(part, sites=["s1", "not a valid site"])
    assert result.inserted == 3
    assert rows(database_url, "SELECT device_id FROM devices") == [("keep",)]
