"""Telemetry retention drops only whole telemetry partitions older than N days — never the
current ones, never any other table (permits and the trail are kept >= 1 year, GB 30871 B.3)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import psycopg
import pytest

from api.errors import OperationError
from api.retention import drop_old_telemetry

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
DAYS_AGO = [200, 100, 91, 90, 89, 10, 0]


def _seed(url: str) -> None:
    """A partition with one sample for each day in DAYS_AGO, plus tables that look old but
    are not telemetry: a partitioned audit trail and a permits table."""
    with psycopg.connect(url) as conn:
        for ago in DAYS_AGO:
            day = (NOW - dt.timedelta(days=ago)).date()
            conn.execute("SELECT pp_ensure_telemetry_partition(%s)", (day,))
            conn.execute(
                "INSERT INTO sites VALUES ('s1', 's1') ON CONFLICT DO NOTHING; "
                "INSERT INTO devices (device_id, site_id) VALUES ('d1', 's1') "
                "ON CONFLICT DO NOTHING"
            )
            conn.execute(
                "INSERT INTO telemetry (ts, device_id, seq) VALUES (%s, 'd1', %s)",
                (dt.datetime.combine(day, dt.time(12), dt.UTC), ago),
            )
        conn.execute(
            """
            CREATE TABLE audit_trail (ts timestamptz NOT NULL, entry text)
                PARTITION BY RANGE (ts);
            CREATE TABLE audit_trail_p20250101 PARTITION OF audit_trail
                FOR VALUES FROM ('2025-01-01') TO ('2025-01-02');
            INSERT INTO audit_trail VALUES ('2025-01-01 08:00+00', 'permit P-1 approved');
            CREATE TABLE telemetry_p20200101 (ts timestamptz, note text);
            CREATE TABLE permits_archive (id text PRIMARY KEY, created timestamptz);
            INSERT INTO permits_archive VALUES ('P-1', '2024-01-01');
            """
        )


def _part(ago: int) -> str:
    return f"telemetry_p{(NOW - dt.timedelta(days=ago)).date():%Y%m%d}"


def _telemetry_days(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT seq FROM telemetry ORDER BY seq DESC").fetchall()
    return [r[0] for r in rows]


def test_retention_drops_only_telemetry_partitions_entirely_older_than_n_days(
    database_url: str,
) -> None:
    """With 90 days: the 200-, 100- and 91-day partitions go; 90 (straddling) and newer stay,
    and the old-looking trail, permits and a look-alike table are untouched."""
    _seed(database_url)
    result = drop_old_telemetry(database_url, days=90, now=NOW)
    assert result.storage_form == "native-partitions"
    assert sorted(result.dropped) == [_part(200), _part(100), _part(91)]
    assert result.kept == 4
    assert _telemetry_days(database_url) == [90, 89, 10, 0]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM audit_trail").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM permits_archive").fetchone() == (1,)
        for table in ("permits", "audit_log", "permit_events"):
            assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (table,)
        assert conn.execute("SELECT to_regclass('telemetry_p20200101')").fetchone() != (None,)
        # Partitions are gone, not merely detached.
        assert conn.execute("SELECT to_regclass(%s)", (_part(200),)).fetchone() == (None,)


def test_retention_dry_run_lists_without_dropping(database_url: str) -> None:
    """--dry-run names the partitions and leaves every row."""
    _seed(database_url)
    result = drop_old_telemetry(database_url, days=95, now=NOW, dry_run=True)
    assert sorted(result.dropped) == [_part(200), _part(100)]
    assert _telemetry_days(database_url) == DAYS_AGO


def test_retention_refuses_less_than_one_day(database_url: str) -> None:
    """Keeping nothing is not a retention policy."""
    with pytest.raises(OperationError, match="at least one day"):
        drop_old_telemetry(database_url, days=0, now=NOW)


def test_retention_command_prints_what_it_dropped(database_url: str) -> None:
    """`permitpulse retention --days N` runs against PP_DATABASE_URL and reports JSON."""
    _seed(database_url)
    env = {"PP_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-m", "api", "retention", "--days", "3650", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert '"dropped":[]' in r.stdout
    assert '"kept":7' in r.stdout
