"""Backup and restore with the machine's pg_dump/pg_restore: what is dumped comes back."""

from __future__ import annotations

import stat
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from api.backup import dump, find_tool, listing, restore, server_major
from api.errors import OperationError
from tests import services

TABLES = ("sites", "devices", "telemetry", "users", "user_sites", "alembic_version")


def _tools_or_skip(url: str) -> None:
    try:
        major = server_major(url)
        find_tool("pg_dump", at_least=major)
        find_tool("pg_restore", at_least=major)
    except OperationError as exc:
        pytest.skip(f"no PostgreSQL client tools for this server: {exc}")


def _snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()  # fixed table names
            for t in TABLES
        }


def _seed(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO sites VALUES ('s1', 'Plant 1')")
        conn.execute("INSERT INTO devices (device_id, site_id) VALUES ('d1', 's1')")
        conn.execute("SELECT pp_ensure_telemetry_partition('2026-11-28')")
        conn.execute(
            "INSERT INTO telemetry (ts, device_id, seq, hr) "
            "SELECT '2026-11-28 00:00+00'::timestamptz + i * interval '1 s', 'd1', i, 70 + i % 9 "
            "FROM generate_series(1, 500) i"
        )
        conn.execute(
            "INSERT INTO users (username, display_name, password_hash, roles) "
            "VALUES ('alice', 'Alice', '$argon2id$v=19$x', '{safety}')"
        )
        conn.execute("INSERT INTO user_sites VALUES ('alice', 's1')")


def test_dump_and_restore_reproduce_the_database(
    database_url: str, admin_url: str, tmp_path: Path
) -> None:
    """pg_dump -Fc of a seeded database restores into an empty one with identical rows,
    partitions and migration version; the dump file is private (0600)."""
    _tools_or_skip(database_url)
    _seed(database_url)
    out = dump(database_url, tmp_path / "pp.dump")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert any("TABLE DATA public telemetry_p20261128" in e for e in listing(out))
    target = f"pp_restore_{uuid.uuid4().hex[:8]}"
    services.create_database(admin_url, target)
    try:
        target_url = services.database_url(admin_url, target)
        restore(target_url, out)
        assert _snapshot(target_url) == _snapshot(database_url)
        with psycopg.connect(target_url) as conn:
            # The restored partitioned table still routes new rows (function and parent intact).
            conn.execute("SELECT pp_ensure_telemetry_partition('2026-11-29')")
            conn.execute(
                "INSERT INTO telemetry (ts, device_id, seq) VALUES ('2026-11-29 01:00+00', 'd1', 1)"
            )
        with pytest.raises(OperationError, match="not empty"):
            restore(target_url, out)
    finally:
        services.drop_database(admin_url, target)


def test_backup_command_writes_a_listable_dump(database_url: str, tmp_path: Path) -> None:
    """`permitpulse backup create FILE` then `backup list FILE` from the shell."""
    _tools_or_skip(database_url)
    env = {"PP_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    file = tmp_path / "b.dump"
    made = subprocess.run(
        [sys.executable, "-m", "api", "backup", "create", str(file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "api", "backup", "list", str(file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "TABLE public users" in listed.stdout


def test_damaged_dump_is_reported_not_restored(tmp_path: Path) -> None:
    """A truncated or foreign file fails the listing with the tool's message."""
    try:
        find_tool("pg_restore", at_least=0)
    except OperationError as exc:
        pytest.skip(str(exc))
    bad = tmp_path / "bad.dump"
    bad.write_bytes(b"PGDMP" + b"\x00" * 10)
    with pytest.raises(OperationError, match="pg_restore"):
        listing(bad)
