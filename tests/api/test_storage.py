"""Storage: migrations, the telemetry storage form and partitions."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from api.storage import downgrade, migrate, sqlalchemy_url


def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    """Migrating an up-to-date database changes nothing and reports the same form."""
    assert migrate(database_url) == migrate(database_url)


def test_migrate_on_plain_postgres_chooses_native_partitions(database_url: str) -> None:
    """Without TimescaleDB, telemetry is range-partitioned by time with a BRIN index."""
    with psycopg.connect(database_url) as conn:
        form = conn.execute("SELECT value FROM pp_meta WHERE key='storage_form'").fetchone()
        has_ts = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name='timescaledb'"
        ).fetchone()
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname='telemetry'").fetchone()
        brin = conn.execute(
            "SELECT 1 FROM pg_indexes WHERE tablename='telemetry' AND indexdef ILIKE '%brin%'"
        ).fetchone()
    if has_ts:
        pytest.skip("this server has TimescaleDB")
    assert form == ("native-partitions",)
    assert kind == ("p",)
    assert brin is not None


def test_partition_function_creates_one_partition_per_day(database_url: str) -> None:
    """Rows of a new day land in that day's partition; asking twice is harmless."""
    day = dt.date(2026, 3, 1)
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT pp_ensure_telemetry_partition(%s)", (day,))
        conn.execute("SELECT pp_ensure_telemetry_partition(%s)", (day,))
        conn.execute(
            "INSERT INTO telemetry (ts, device_id, seq) VALUES ('2026-03-01T23:59:59Z', 'd1', 1)"
        )
        where = conn.execute("SELECT tableoid::regclass::text FROM telemetry").fetchone()
    assert where == ("telemetry_p20260301",)


def test_telemetry_without_partition_is_refused(database_url: str) -> None:
    """No catch-all partition: a day nobody prepared is an error, not silent misfiling."""
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO telemetry (ts, device_id, seq) VALUES ('1999-01-01Z', 'd', 1)")


def test_sqlalchemy_url_uses_psycopg3_driver() -> None:
    """Alembic talks through psycopg 3 as the application does."""
    assert sqlalchemy_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        sqlalchemy_url("mysql://h/db")


def test_migrate_down_to_base_and_up_again(database_url: str) -> None:
    """Every revision can be undone; the schema comes back whole."""
    downgrade(database_url, "base")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('telemetry')").fetchone() == (None,)
    assert migrate(database_url) == "native-partitions"
