"""The TimescaleDB form of the schema, on a real TimescaleDB (the PGlite WASM build from npm).

TimescaleDB is not packaged for Debian 12 nor on PyPI; the only build installable here runs
in Node.js. It serves one shared session and crashes on COPY, so this tests the migration
path (hypertable, compression, retention, continuous aggregate), not the ingest's COPY path.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from api.embedded import free_port
from api.storage import downgrade, migrate

HERE = Path(__file__).resolve().parents[1] / "timescale"


@pytest.fixture(scope="module")
def timescale_url() -> Iterator[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        pytest.skip("Node.js and npm are needed for the TimescaleDB (PGlite) test server")
    if not (HERE / "node_modules" / "@unni-craftsman" / "pglite").exists():
        done = subprocess.run(
            [npm, "install", "--legacy-peer-deps", "--no-audit", "--no-fund", "--silent"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.skip(f"npm could not install the TimescaleDB test server: {done.stderr[-300:]}")
    port = free_port()
    proc = subprocess.Popen(
        [node, "server.mjs", str(port)], cwd=HERE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(0.5)
        yield f"postgresql://postgres:pglite@127.0.0.1:{port}/postgres?sslmode=disable"
    finally:
        proc.terminate()
        proc.wait(10)


def _q(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, prepare_threshold=None, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def test_migrate_with_timescaledb_builds_a_hypertable(timescale_url: str) -> None:
    """Where the extension exists, telemetry is a compressed hypertable with retention."""
    assert migrate(timescale_url) == "timescaledb"
    assert migrate(timescale_url) == "timescaledb"
    assert _q(timescale_url, "SELECT hypertable_name FROM timescaledb_information.hypertables") == [
        ("telemetry",)
    ]
    jobs = {r[0] for r in _q(timescale_url, "SELECT proc_name FROM timescaledb_information.jobs")}
    assert {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"} <= jobs


def test_timescaledb_one_minute_aggregate_buckets_samples(timescale_url: str) -> None:
    """Rows land in chunks and the 1-minute continuous aggregate summarises them."""
    migrate(timescale_url)
    with psycopg.connect(timescale_url, prepare_threshold=None, autocommit=True) as conn:
        conn.execute("SELECT pp_ensure_telemetry_partition(current_date)")
        conn.execute(
            "INSERT INTO telemetry (ts, device_id, seq, hr, spo2) VALUES "
            "(date_trunc('minute', now()) - interval '5 min', 'd1', 1, 80, 97),"
            "(date_trunc('minute', now()) - interval '5 min' + interval '10 s', 'd1', 2, 100, 95)"
            " ON CONFLICT DO NOTHING"
        )
        conn.execute("CALL refresh_continuous_aggregate('telemetry_1m', NULL, NULL)")
        rows = conn.execute("SELECT hr, hr_max, spo2_min, samples FROM telemetry_1m").fetchall()
    assert rows == [(90.0, 100.0, 95.0, 2)]


def test_timescaledb_downgrade_and_upgrade_again(timescale_url: str) -> None:
    """The hypertable form can be rolled back to nothing and rebuilt."""
    migrate(timescale_url)
    downgrade(timescale_url, "base")
    assert _q(timescale_url, "SELECT to_regclass('telemetry')") == [(None,)]
    assert migrate(timescale_url) == "timescaledb"
