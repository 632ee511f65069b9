"""Soak and faults (`benchmarks/soak.py`): the short soak runs in `make test` — two minutes
of a wearable fleet with incidents while the broker restarts, PostgreSQL restarts and the
service is killed with SIGKILL; plus the soak's own checks, shown able to fail.

The short soak is marked ``soak`` (and ``slow``): ``pytest -m soak`` runs only it,
``pytest -m 'not soak'`` leaves it out."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator

import psycopg
import pytest

from api.settings import DatabaseSettings
from api.storage import open_pool
from benchmarks import _soak_check as check
from benchmarks._soak_scenario import WAVE_SPAN_S, build, wave_times
from benchmarks._stack import have_binaries
from benchmarks.soak import KINDS, SoakOptions, plan_faults, run_soak
from ingest.wire import SampleBatch
from ingest.writer import TelemetryWriter
from tests.factories import now_ms, samples

# --------------------------------------------------------------------------- plan


def test_plan_faults_same_seed_same_moments_every_kind_inside_the_run() -> None:
    """The fault plan is seeded, has every kind, and leaves the start and the last 40 s."""
    opts = SoakOptions(minutes=30, fault_every_s=120, lead_s=20)
    a = plan_faults(opts, random.Random(7))
    b = plan_faults(opts, random.Random(7))
    assert [dataclasses.astuple(f) for f in a] == [dataclasses.astuple(f) for f in b]
    assert len(a) == 14
    assert {f.kind for f in a} == set(KINDS)
    assert all(20 <= f.at_s <= 1800 - 40 for f in a)
    assert [f.at_s for f in a] == sorted(f.at_s for f in a)


def test_plan_faults_short_run_still_has_one_of_each_kind() -> None:
    """Two minutes: one broker restart, one PostgreSQL restart, one SIGKILL."""
    plan = plan_faults(SoakOptions(minutes=2, fault_every_s=35, lead_s=10), random.Random(1))
    assert sorted(f.kind for f in plan) == sorted(KINDS)


def test_soak_scenario_waves_fit_the_run_with_their_permits_and_people() -> None:
    """Each wave ends inside the run with its SX and DH permit and seven people; heat strain
    only in the waves with forty minutes left."""
    assert wave_times(120, 30, 10) == [10, 40]
    scenario, waves = build(duration_s=2700, devices=10, every_s=90, lead_s=20, seed=3)
    assert waves[-1].at_s + WAVE_SPAN_S <= 2700
    assert len(scenario.permits) == 2 * len(waves)
    assert len(scenario.workers) == 7 * len(waves)
    assert [w.heat for w in waves] == [w.at_s + 2400 <= 2700 for w in waves]
    kinds = {i.kind for i in scenario.incidents}
    assert kinds == {"o2_deficient", "sos", "fall", "watcher_away", "heat_strain"}


# --------------------------------------------------------------------------- checks


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[TelemetryWriter]:
    async with open_pool(DatabaseSettings(pool_max=2), database_url) as pool:
        w = TelemetryWriter(pool)
        yield w
        await w.close()


async def test_sample_counts_reports_missing_doubled_gapped_and_unexpected_samples(
    writer: TelemetryWriter, database_url: str
) -> None:
    """The exactly-once check fails on every way a store can go wrong."""
    t0 = now_ms() - 600_000
    gapped = [s for s in samples("b", 4, start_ms=t0) if s.seq != 3]
    doubled = samples("d", 2, start_ms=t0) + samples("d", 1, start_ms=t0 + 500)  # seq 1 twice
    rows = samples("a", 5, start_ms=t0) + gapped + doubled + samples("x", 2, start_ms=t0)
    await writer.write(SampleBatch.from_samples(rows), sites=["s"] * 4)
    with psycopg.connect(database_url) as conn:
        got = check.sample_counts(conn, {"a": 5, "b": 4, "c": 3, "d": 2})
    assert got["stored"] == 5 + 3 + 3 + 2
    assert got["missing"] == 1 + 3  # b's seq 3, all of c
    assert got["duplicates"] == 1
    assert got["unexpected_rows"] == 2
    assert got["devices_incomplete_examples"] == ["b", "c"]


async def test_sample_counts_complete_store_has_nothing_to_report(
    writer: TelemetryWriter, database_url: str
) -> None:
    """Every device with exactly its samples 1..n: no missing, no doubles, none incomplete."""
    await writer.write(SampleBatch.from_samples(samples("a", 5) + samples("b", 7)), sites=["s"] * 2)
    with psycopg.connect(database_url) as conn:
        got = check.sample_counts(conn, {"a": 5, "b": 7})
    assert (got["stored"], got["missing"], got["duplicates"], got["devices_incomplete"]) == (
        12,
        0,
        0,
        0,
    )


def test_incident_actions_without_decisions_reports_every_incident_missed_with_its_kind(
    database_url: str,
) -> None:
    """No decision taken: every injected incident is listed as missed, with its kind."""
    _, waves = build(duration_s=2430, devices=0, every_s=90, lead_s=20, seed=1)
    incidents = check.injected(waves, now_ms())
    with psycopg.connect(database_url) as conn:
        got = check.incident_actions(conn, incidents, kills_ms=[])
    assert got["injected"] == 4 * len(waves) + 1  # only the first wave has time for heat
    assert got["acted_on"] == 0
    assert not check.all_acted_on(got)
    kinds = {r["kind"] for r in got["missed"]}
    assert kinds == {"o2_deficient", "sos", "fall", "watcher_away", "heat_strain"}


# --------------------------------------------------------------------------- the short soak


@pytest.mark.soak
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not have_binaries(), reason="needs mosquitto and PostgreSQL binaries")
async def test_short_soak_faults_lose_nothing_double_nothing_and_every_incident_is_acted_on() -> (
    None
):
    """Two minutes, 500 background wearables, two incident waves, one broker restart, one
    PostgreSQL restart and one SIGKILL of the service: every acknowledged sample stored once,
    every incident's rule fired with its commands, pushes and suspension, memory bounded."""
    opts = SoakOptions(
        minutes=2, devices=500, seed=11, fault_every_s=35, incident_every_s=30, lead_s=10
    )
    report = await run_soak(opts)
    s, inc = report["samples"], report["incidents"]
    assert report["restarts"] == {"broker": 1, "postgres": 1, "kill": 1}, report["faults"]
    assert s["sent"] == s["measured"] > 500 * 110
    assert (s["stored"], s["missing"], s["duplicates"]) == (s["sent"], 0, 0), s
    assert (s["devices_incomplete"], s["unsent_at_end"], s["dead_letters"]) == (0, 0, 0), s
    assert inc["injected"] == 8
    assert inc["missed"] == [], inc
    assert inc["incomplete"] == [], inc
    assert report["rss_mb"]["flat"], report["rss_mb"]
    assert report["ok"] is True, report["invariants"]
