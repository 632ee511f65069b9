"""Foundation: sites, workers, devices, dead letters and time-partitioned telemetry.

Telemetry takes one of two physical forms, chosen here and recorded in ``pp_meta``:
a TimescaleDB hypertable (compression, retention, 1-minute continuous aggregate) when the
``timescaledb`` extension is available, else native daily range partitions with a BRIN index
on time and a plain 1-minute view. The logical schema is the same in both.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TELEMETRY_COLUMNS = """
    ts          timestamptz      NOT NULL,
    device_id   text             NOT NULL,
    seq         bigint           NOT NULL CHECK (seq >= 0),
    hr          real,
    skin_temp   real,
    spo2        real,
    lat         double precision,
    lon         double precision,
    gps_acc     real,
    motion      real,
    battery     real,
    flags       smallint         NOT NULL DEFAULT 0,
    received_at timestamptz      NOT NULL DEFAULT now()
"""

ONE_MINUTE_SELECT = """
    SELECT device_id, {bucket} AS bucket,
           avg(hr)::real AS hr, max(hr)::real AS hr_max, avg(skin_temp)::real AS skin_temp,
           avg(spo2)::real AS spo2, min(spo2)::real AS spo2_min,
           avg(motion)::real AS motion, count(*) AS samples
      FROM telemetry
     GROUP BY device_id, {bucket}
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE pp_meta (
            key   text PRIMARY KEY,
            value text NOT NULL
        );
        CREATE TABLE sites (
            site_id    text PRIMARY KEY CHECK (site_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
            name       text NOT NULL,
            timezone   text NOT NULL DEFAULT 'Asia/Shanghai',
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE workers (
            worker_id    text PRIMARY KEY,
            site_id      text NOT NULL REFERENCES sites,
            name         text NOT NULL,
            crew         text,
            age          integer CHECK (age BETWEEN 16 AND 80),
            acclimatized boolean NOT NULL DEFAULT false,
            resting_hr   real CHECK (resting_hr BETWEEN 30 AND 120),
            created_at   timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE devices (
            device_id  text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
            site_id    text NOT NULL REFERENCES sites,
            worker_id  text REFERENCES workers,
            kind       text NOT NULL DEFAULT 'wearable'
                       CHECK (kind IN ('wearable', 'gateway', 'gas_detector')),
            first_seen timestamptz NOT NULL DEFAULT now(),
            last_seen  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX devices_site_idx ON devices (site_id);
        CREATE TABLE dead_letters (
            id           bigserial PRIMARY KEY,
            received_at  timestamptz NOT NULL DEFAULT now(),
            topic        text NOT NULL,
            payload      bytea NOT NULL,
            reason       text NOT NULL,
            sample_index integer
        );
        CREATE INDEX dead_letters_received_idx ON dead_letters USING brin (received_at);
        """
    )
    has_timescale = (
        op.get_bind()
        .exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        .first()
        is not None
    )
    if has_timescale:
        _timescale()
    else:
        _native_partitions()


def _native_partitions() -> None:
    op.execute(
        f"""
        CREATE TABLE telemetry ({TELEMETRY_COLUMNS}) PARTITION BY RANGE (ts);
        CREATE UNIQUE INDEX telemetry_device_ts_seq ON telemetry (device_id, ts, seq);
        CREATE INDEX telemetry_ts_brin ON telemetry USING brin (ts);
        CREATE VIEW telemetry_1m AS
        {ONE_MINUTE_SELECT.format(bucket="date_bin('1 minute', ts, timestamptz 'epoch')")};

        -- Daily partitions are made on demand by the writer (and ahead of time by the
        -- maintenance task); an advisory lock keeps two writers from racing.
        CREATE FUNCTION pp_ensure_telemetry_partition(day date) RETURNS void
        LANGUAGE plpgsql AS $fn$
        DECLARE
            part text := format('telemetry_p%s', to_char(day, 'YYYYMMDD'));
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtext('pp_telemetry_partitions'));
            IF to_regclass(part) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)',
                    part,
                    (day::timestamp AT TIME ZONE 'UTC'),
                    ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            END IF;
        END
        $fn$;
        INSERT INTO pp_meta VALUES ('storage_form', 'native-partitions');
        """
    )


def _timescale() -> None:
    op.execute(
        f"""
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        CREATE TABLE telemetry ({TELEMETRY_COLUMNS});
        SELECT create_hypertable('telemetry', 'ts', chunk_time_interval => interval '1 day');
        CREATE UNIQUE INDEX telemetry_device_ts_seq ON telemetry (device_id, ts, seq);
        ALTER TABLE telemetry SET (timescaledb.compress,
                                   timescaledb.compress_segmentby = 'device_id',
                                   timescaledb.compress_orderby = 'ts, seq');
        SELECT add_compression_policy('telemetry', interval '7 days');
        SELECT add_retention_policy('telemetry', interval '90 days');
        -- Same signature as the native form; chunks are created by TimescaleDB itself.
        CREATE FUNCTION pp_ensure_telemetry_partition(day date) RETURNS void
        LANGUAGE sql AS $fn$ SELECT $fn$;
        INSERT INTO pp_meta VALUES ('storage_form', 'timescaledb');
        """
    )
    # A continuous aggregate cannot be created inside a transaction block.
    with op.get_context().autocommit_block():
        op.execute(
            "CREATE MATERIALIZED VIEW telemetry_1m WITH (timescaledb.continuous) AS "
            + ONE_MINUTE_SELECT.format(bucket="time_bucket('1 minute', ts)")
            + " WITH NO DATA"
        )
        op.execute(
            "SELECT add_continuous_aggregate_policy('telemetry_1m', "
            "start_offset => interval '1 day', end_offset => interval '1 minute', "
            "schedule_interval => interval '1 minute')"
        )


def downgrade() -> None:
    form = op.get_bind().exec_driver_sql("SELECT value FROM pp_meta WHERE key = 'storage_form'")
    if form.scalar() == "timescaledb":
        with op.get_context().autocommit_block():
            op.execute("DROP MATERIALIZED VIEW IF EXISTS telemetry_1m CASCADE")
    else:
        op.execute("DROP VIEW IF EXISTS telemetry_1m CASCADE")
    op.execute(
        """
        DROP TABLE IF EXISTS telemetry CASCADE;
        DROP FUNCTION IF EXISTS pp_ensure_telemetry_partition(date);
        DROP TABLE IF EXISTS dead_letters, devices, workers, sites, pp_meta CASCADE;
        """
    )
