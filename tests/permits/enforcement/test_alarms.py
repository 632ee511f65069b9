"""Alarm lifecycle in the database: one open alarm per subject and kind; people ack and resolve."""

from __future__ import annotations

import psycopg
import pytest

from api.settings import Settings
from api.storage import open_pool
from permits.enforcement.alarms import AlarmNotFound, AlarmStore, ResolutionRequired
from permits.enforcement.engine import AlarmFacts


def fact(
    state: str, severity: str = "warning", ts: int = 1_800_000_000_000, kind: str = "spo2_low"
) -> AlarmFacts:
    return AlarmFacts(ts, "d1", "w1", kind, severity, state, 89.0)


async def test_alarm_raised_escalated_cleared_is_one_alarm_with_every_step(
    settings: Settings,
) -> None:
    """Severity rises on the open alarm; clearing closes it; each change is an event."""
    assert settings.database.url
    async with open_pool(settings.database, settings.database.url) as pool:
        store = AlarmStore(pool)
        await store.record([fact("raised"), fact("escalated", "critical", 1_800_000_001_000)])
        (row,) = await store.record([fact("cleared", "critical", 1_800_000_002_000)])
        assert (row.state, row.severity, row.peak, row.subject) == (
            "cleared",
            "critical",
            "critical",
            "worker:w1",
        )
        assert [e for e, _ in await store.events(row.alarm_id)] == [
            "raised",
            "escalated",
            "cleared",
        ]
        again = await store.record([fact("raised", ts=1_800_000_003_000)])
        assert again[0].alarm_id != row.alarm_id


async def test_only_one_open_alarm_per_subject_and_kind(settings: Settings) -> None:
    """The database itself refuses a second active alarm of a kind for a worker."""
    assert settings.database.url
    async with open_pool(settings.database, settings.database.url) as pool:
        await AlarmStore(pool).record([fact("raised"), fact("raised")])
    with psycopg.connect(settings.database.url) as conn:
        assert conn.execute("SELECT count(*) FROM alarms").fetchone() == (1,)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO alarms (subject, device_id, kind, severity, peak, raised_at,"
                " updated_at) VALUES ('worker:w1', 'd1', 'spo2_low', 'warning', 'warning',"
                " now(), now())"
            )


async def test_acknowledge_and_resolve_record_who_and_why(settings: Settings) -> None:
    """Acknowledging is idempotent; resolving needs a reason; unknown alarms are 'not found'."""
    assert settings.database.url
    async with open_pool(settings.database, settings.database.url) as pool:
        store = AlarmStore(pool)
        (row,) = await store.record([fact("raised")])
        await store.acknowledge(row.alarm_id, user="cr1")
        acked = await store.acknowledge(row.alarm_id, user="cr2")
        assert acked.acked_by == "cr1"
        with pytest.raises(ResolutionRequired):
            await store.resolve(row.alarm_id, user="cr1", reason="  ")
        done = await store.resolve(row.alarm_id, user="cr1", reason="sensor loose, refitted")
        assert (done.resolved_by, done.resolution) == ("cr1", "sensor loose, refitted")
        assert [e for e, _ in await store.events(row.alarm_id)] == [
            "raised",
            "acknowledged",
            "acknowledged",
            "resolved",
        ]
        with pytest.raises(AlarmNotFound):
            await store.acknowledge(999_999, user="cr1")
