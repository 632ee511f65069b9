"""Ingest throughput against its in-run baselines; prints one JSON object.

Measured in one run, on a private Mosquitto (the project's ``deploy/mosquitto.conf`` settings)
and a private PostgreSQL, each phase draining a backlog preloaded into the consumer's
persistent session (so the publisher never competes for the CPU while a consumer is timed):

(a) ``bare_client_msgs_per_s``: a bare aiomqtt subscriber that only counts single-sample
    frames (aiomqtt's default: acknowledged on receipt);
(b) ``copy_rows_per_s``: binary COPY of the gateway run's rows into the same (fresh) table,
    in transactions of the ingest's batch size — the numpy-built stream the writer uses,
    and psycopg's ``write_row`` for reference;
(c) ``ingest_single_msgs_per_s`` / ``ingest_gateway_samples_per_s``: the full ingest
    (receive → decode → checks → store → acknowledge → detector hook) for single-sample
    frames and for 50-sample gateway frames, timed until the hook has seen every sample.

``lost`` and ``duplicated`` count samples missing from / doubled in the table and the hook.
The publisher is a separate process using paho-mqtt with pre-encoded frames (the simulator's
load generator is built elsewhere; this one only needs to be fast and exact).

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--rounds 3] [--quick] [--profile]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import multiprocessing as mp
import os
import pstats
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.settings import DatabaseSettings  # noqa: E402
from api.storage import migrate, open_pool  # noqa: E402
from ingest.config import IngestSettings, MqttSettings  # noqa: E402
from ingest.consumer import Ingest  # noqa: E402
from ingest.mqtt import BrokerAddress, client  # noqa: E402
from ingest.pgcopy import TELEMETRY_COLUMNS, telemetry_copy  # noqa: E402
from ingest.topics import device_topic, gateway_topic, telemetry_filters  # noqa: E402
from ingest.wire import RECORD_DTYPE, SampleBatch, concat, encode_binary  # noqa: E402
from tests import services  # noqa: E402

SITE = "bench-site"
Frames = list[tuple[str, bytes]]


# --------------------------------------------------------------------------- data


def _records(devices: int, ticks: int, t0_ms: int) -> np.ndarray:
    """``ticks`` 1 Hz samples of ``devices`` devices, tick-major, plausible values."""
    n = devices * ticks
    rng = np.random.default_rng(7)
    rec = np.zeros(n, dtype=RECORD_DTYPE)
    tick = np.arange(n) // devices
    rec["dev"] = np.arange(n) % devices
    rec["seq"] = tick + 1
    rec["ts_ms"] = t0_ms + tick * 1000
    rec["hr"] = rng.normal(95, 15, n).clip(40, 200)
    rec["skin_temp"] = rng.normal(34, 0.5, n)
    rec["spo2"] = rng.normal(97, 1, n).clip(80, 100)
    rec["lat"] = 30.74 + rng.normal(0, 1e-4, n)
    rec["lon"] = 121.34 + rng.normal(0, 1e-4, n)
    rec["gps_acc"] = 4.0
    rec["motion"] = rng.uniform(0, 1, n)
    rec["battery"] = 80.0
    return rec


def single_frames(root: str, devices: int, ticks: int, t0_ms: int) -> tuple[Frames, int]:
    names = tuple(f"w{i:05d}" for i in range(devices))
    rec = _records(devices, ticks, t0_ms)
    frames = []
    for r in rec:
        one = r.copy()
        d = int(one["dev"])
        one["dev"] = 0
        batch = SampleBatch.from_records((names[d],), np.array([one]))
        frames.append((device_topic(root, SITE, names[d], "telemetry"), encode_binary(batch)))
    return frames, len(rec)


def gateway_frames(
    root: str, gateways: int, per_gateway: int, ticks: int, t0_ms: int
) -> tuple[Frames, SampleBatch]:
    """Each frame: one tick of ``per_gateway`` devices behind one gateway; gateways
    interleaved tick by tick, as they arrive. The batch holds the same rows in that order."""
    recs = [_records(per_gateway, ticks, t0_ms) for _ in range(gateways)]
    names = [tuple(f"g{g:02d}w{i:03d}" for i in range(per_gateway)) for g in range(gateways)]
    frames = []
    parts = []
    for t in range(ticks):
        for g in range(gateways):
            batch = SampleBatch.from_records(
                names[g], recs[g][t * per_gateway : (t + 1) * per_gateway]
            )
            frames.append(
                (gateway_topic(root, SITE, f"gw{g:02d}"), encode_binary(batch, gateway=True))
            )
            parts.append(batch)
    return frames, concat(parts)


# --------------------------------------------------------------------------- publisher


def _publish_process(url: str, frames: Frames) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    addr = BrokerAddress.from_url(url)
    pub = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}", clean_session=True
    )
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(addr.host, addr.port)
    pub.loop_start()
    infos = [pub.publish(topic, payload, qos=1) for topic, payload in frames]
    for info in infos:
        info.wait_for_publish(300)
    pub.loop_stop()
    pub.disconnect()


def publish(url: str, frames: Frames) -> float:
    """Publish in a separate process (QoS 1, every message acknowledged by the broker)."""
    started = time.perf_counter()
    proc = mp.get_context("spawn").Process(target=_publish_process, args=(url, frames))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"publisher failed with exit code {proc.exitcode}")
    return len(frames) / (time.perf_counter() - started)


async def create_session(url: str, client_id: str, root: str) -> None:
    """Make the persistent session exist (subscribed) so the broker queues for it."""
    async with client(url, identifier=client_id, clean_session=False) as c:
        for flt in telemetry_filters(root):
            await c.subscribe(flt, qos=1)


# --------------------------------------------------------------------------- phases


async def bare_client(url: str, root: str, frames: Frames) -> float:
    """(a) messages/s of a bare aiomqtt subscriber draining the backlog."""
    cid = f"bench-bare-{uuid.uuid4().hex[:6]}"
    await create_session(url, cid, root)
    publish(url, frames)
    got = 0
    started = time.perf_counter()
    async with client(url, identifier=cid, clean_session=False) as c:
        async for _ in c.messages:
            got += 1
            if got == len(frames):
                break
    return len(frames) / (time.perf_counter() - started)


async def copy_rows(url: str, batch: SampleBatch, chunk: int) -> dict[str, float]:
    """(b) rows/s of binary COPY of the gateway run's rows, in the order the ingest receives
    them, into a fresh telemetry table, ``chunk`` rows a transaction (the ingest's batch)."""
    cols = ", ".join(TELEMETRY_COLUMNS)
    parts = [batch.select(_range_mask(len(batch), i, chunk)) for i in range(0, len(batch), chunk)]
    out = {}
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await _partitions(conn, batch)
        started = time.perf_counter()
        for part in parts:
            async with (
                conn.transaction(),
                conn.cursor().copy(f"COPY telemetry ({cols}) FROM STDIN (FORMAT BINARY)") as cp,
            ):
                await cp.write(telemetry_copy(part))
        out["numpy_stream"] = len(batch) / (time.perf_counter() - started)
        await conn.execute("TRUNCATE telemetry")
        await conn.commit()
        types = ["timestamptz", "int8", *(["float4"] * 3), "float8", "float8"]
        types += ["float4", "float4", "float4", "int2", "text"]
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        started = time.perf_counter()
        for part in parts:
            rows = zip(
                [epoch + dt.timedelta(milliseconds=t) for t in part.ts_ms.tolist()],
                part.seq.tolist(),
                *([None if v != v else v for v in getattr(part, m).tolist()] for m in
                  ("hr", "skin_temp", "spo2", "lat", "lon", "gps_acc", "motion", "battery")),
                part.flags.tolist(),
                part.device_ids().tolist(),
                strict=True,
            )  # fmt: skip
            async with (
                conn.transaction(),
                conn.cursor().copy(f"COPY telemetry ({cols}) FROM STDIN (FORMAT BINARY)") as cp,
            ):
                cp.set_types(types)
                for row in rows:
                    await cp.write_row(row)
        out["write_row"] = len(batch) / (time.perf_counter() - started)
    return out


def _range_mask(n: int, start: int, size: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[start : start + size] = True
    return mask


async def _partitions(conn: psycopg.AsyncConnection[Any], batch: SampleBatch) -> None:
    for day in np.unique(batch.ts_ms // 86_400_000).tolist():
        date = (dt.datetime(1970, 1, 1) + dt.timedelta(days=day)).date()
        await conn.execute("SELECT pp_ensure_telemetry_partition(%s)", (date,))
    await conn.commit()


class HookLog:
    """The detector hook: keeps what it was given (checked after the clock stops) and signals
    when every sample has arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.batches: list[SampleBatch] = []
        self.done = asyncio.Event()

    async def __call__(self, batch: SampleBatch) -> None:
        self.batches.append(batch)
        self.count += len(batch)
        if self.count >= self.expected:
            self.done.set()

    def duplicates(self) -> int:
        keys = [
            (d, s)
            for b in self.batches
            for d, s in zip(b.device_ids().tolist(), b.seq.tolist(), strict=True)
        ]
        return len(keys) - len(set(keys))


async def full_ingest(
    mqtt_url: str,
    db_url: str,
    root: str,
    frames: Frames,
    expected: int,
    settings: IngestSettings,
    profile: bool,
) -> dict[str, Any]:
    """(c) the whole ingest draining a backlog; time until the hook saw every sample."""
    cid = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    mqtt = MqttSettings(url=mqtt_url, topic_root=root, client_id=cid)
    await create_session(mqtt_url, cid, root)
    publish(mqtt_url, frames)
    hook = HookLog(expected)
    prof = cProfile.Profile() if profile else None
    async with open_pool(DatabaseSettings(pool_max=2), db_url) as pool:
        from ingest.writer import TelemetryWriter

        writer = TelemetryWriter(pool)
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
        if prof:
            prof.enable()
        started = time.perf_counter()
        ingest = Ingest(
            mqtt_url=mqtt_url, mqtt=mqtt, settings=settings, writer=writer, on_batch=hook
        )
        async with ingest:
            try:
                async with asyncio.timeout(300):
                    await hook.done.wait()
            except TimeoutError:
                pass
            elapsed = time.perf_counter() - started
        if prof:
            prof.disable()
    stored, distinct = _count(db_url)
    out: dict[str, Any] = {
        "elapsed_s": elapsed,
        "lost": expected - distinct,
        "duplicated": (stored - distinct) + hook.duplicates(),
        "batches": ingest.stats.batches,
        "mean_batch_samples": ingest.stats.samples_offered / max(ingest.stats.batches, 1),
        "dead_letters": ingest.stats.dead_letters,
    }
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats(
            os.environ.get("PROFILE_SORT", "tottime")
        ).print_stats(int(os.environ.get("PROFILE_LINES", "25")))
        out["profile"] = s.getvalue()
    return out


def _count(db_url: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, seq)) FROM telemetry"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# --------------------------------------------------------------------------- main


class Services:
    """A private Mosquitto and PostgreSQL (or PP_BENCH_MQTT_URL / PP_BENCH_DATABASE_URL)."""

    def __init__(self) -> None:
        self.mosquitto: services.Mosquitto | None = None
        self.postgres: services.PrivatePostgres | None = None
        self.mqtt_url = os.environ.get("PP_BENCH_MQTT_URL", "")
        self.admin_url = os.environ.get("PP_BENCH_DATABASE_URL", "")
        self.template = f"pp_bench_tpl_{uuid.uuid4().hex[:6]}"

    def __enter__(self) -> Services:
        if not self.mqtt_url:
            binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            self.mosquitto = services.Mosquitto(binary)
            self.mosquitto.start()
            self.mqtt_url = self.mosquitto.url
        if not self.admin_url:
            bindir = services.find_pg_bindir()
            if bindir is None:
                raise SystemExit("needs PostgreSQL binaries or PP_BENCH_DATABASE_URL")
            self.postgres = services.PrivatePostgres(bindir)
            self.postgres.start()
            self.admin_url = self.postgres.url
        services.create_database(self.admin_url, self.template)
        migrate(services.database_url(self.admin_url, self.template))
        return self

    def fresh_db(self) -> str:
        name = f"pp_bench_{uuid.uuid4().hex[:8]}"
        services.create_database(self.admin_url, name, template=self.template)
        return services.database_url(self.admin_url, name)

    def __exit__(self, *exc: object) -> None:
        if self.mosquitto:
            self.mosquitto.close()
        if self.postgres:
            self.postgres.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    single_devices, single_ticks = (200, 50) if args.quick else (500, 100)
    gw, per_gw, gw_ticks = (5, 50, 40) if args.quick else (10, 50, 800)
    t0 = int(time.time() * 1000) - 3_600_000
    settings = IngestSettings()
    if args.linger_ms is not None:
        settings.batch_max_ms = args.linger_ms
    rounds: list[dict[str, Any]] = []
    with Services() as svc:
        for r in range(args.rounds):
            root = f"bench{r}{uuid.uuid4().hex[:4]}/pp/v1"
            singles, n_single = single_frames(root, single_devices, single_ticks, t0)
            gateways, gw_batch = gateway_frames(root, gw, per_gw, gw_ticks, t0)
            result: dict[str, Any] = {}
            # Candidate and baseline back to back, so they see the same machine load.
            result["bare_client_msgs_per_s"] = await bare_client(svc.mqtt_url, root, singles)
            one = await full_ingest(
                svc.mqtt_url, svc.fresh_db(), root, singles, n_single, settings, args.profile
            )
            result["ingest_single_msgs_per_s"] = n_single / one["elapsed_s"]
            copies = await copy_rows(svc.fresh_db(), gw_batch, settings.batch_max_samples)
            result["copy_rows_per_s"] = copies["numpy_stream"]
            result["copy_write_row_rows_per_s"] = copies["write_row"]
            many = await full_ingest(
                svc.mqtt_url, svc.fresh_db(), root, gateways, len(gw_batch), settings, args.profile
            )
            result["ingest_gateway_samples_per_s"] = len(gw_batch) / many["elapsed_s"]
            result["lost"] = one["lost"] + many["lost"]
            result["duplicated"] = one["duplicated"] + many["duplicated"]
            result["single_detail"] = {k: v for k, v in one.items() if k != "profile"}
            result["gateway_detail"] = {k: v for k, v in many.items() if k != "profile"}
            if args.profile:
                print(one["profile"], many["profile"], file=sys.stderr, sep="\n")
            rounds.append(result)
            print(f"round {r}: {orjson.dumps(result).decode()}", file=sys.stderr)
    return summarize(rounds, n_single, len(gw_batch), args)


def summarize(
    rounds: list[dict[str, Any]], n_single: int, n_gateway: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Ratios per round (candidate and baseline measured side by side), median over rounds."""

    def med(key: str) -> float:
        return round(float(statistics.median(r[key] for r in rounds)), 1)

    single_ratios = [r["ingest_single_msgs_per_s"] / r["bare_client_msgs_per_s"] for r in rounds]
    gateway_ratios = [r["ingest_gateway_samples_per_s"] / r["copy_rows_per_s"] for r in rounds]
    return {
        "benchmark": "ingest",
        "mode": "backlog drain from a persistent session (Mosquitto, PostgreSQL, loopback)",
        "rounds": len(rounds),
        "batch_max_ms": args.linger_ms
        if args.linger_ms is not None
        else IngestSettings().batch_max_ms,
        "single_frames": n_single,
        "gateway_samples": n_gateway,
        "samples_per_gateway_frame": 50,
        "bare_client_msgs_per_s": med("bare_client_msgs_per_s"),
        "copy_rows_per_s": med("copy_rows_per_s"),
        "copy_write_row_rows_per_s": med("copy_write_row_rows_per_s"),
        "ingest_single_msgs_per_s": med("ingest_single_msgs_per_s"),
        "ingest_gateway_samples_per_s": med("ingest_gateway_samples_per_s"),
        "ratio_single_vs_bare_client": round(statistics.median(single_ratios), 3),
        "ratio_gateway_vs_copy": round(statistics.median(gateway_ratios), 3),
        "lost": sum(r["lost"] for r in rounds),
        "duplicated": sum(r["duplicated"] for r in rounds),
        "targets": {
            "ratio_single_vs_bare_client": ">= 0.8",
            "ratio_gateway_vs_copy": ">= 0.5",
            "lost": "== 0",
            "duplicated": "== 0",
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small data (a smoke run)")
    p.add_argument("--profile", action="store_true", help="cProfile the ingest phases (stderr)")
    p.add_argument("--linger-ms", type=int, default=None, help="override batch_max_ms")
    args = p.parse_args()
    print(orjson.dumps(asyncio.run(run(args)), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
