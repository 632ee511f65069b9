"""Benchmark of the load generator (`permitpulse simulate --devices …`).

Part A, on the machine's broker (default mqtt://127.0.0.1:1883, a unique topic root): the
candidate (pre-encoded frames, raw MQTT socket publisher, 2 processes) against the in-run
baseline (the same frames through paho-mqtt, 2 processes), flat out, QoS 1, for single-sample
device frames and 50-sample gateway frames, with a counting subscriber attached so that
"delivered" is measured, not assumed.

Part B (``--ingest``, default on when PostgreSQL binaries are present): how fast the current
ingest (``ingest.consumer.Ingest`` + ``TelemetryWriter``) stores the same kinds of frames.
The frames are queued first in a private Mosquitto (project settings: a queue large enough not
to drop QoS 1 messages, which the machine's default of 1000 would) for the ingest's persistent
session; the ingest then drains them with the publisher idle, so it has both cores.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firmware_sim import _packets as pk
from firmware_sim.loadgen import LoadSpec, run_load
from ingest.mqtt import BrokerAddress


def _count_subscriber(url: str, topic_filter: str, ready: Any, stop: Any, out: Any) -> None:
    """A lean QoS 0 subscriber counting PUBLISH packets until ``stop`` is set."""
    addr = BrokerAddress.from_url(url)
    sock = socket.create_connection((addr.host, addr.port))
    sock.sendall(
        pk.connect(f"bench-count-{uuid.uuid4().hex[:8]}", keepalive_s=0, clean_session=True)
    )
    sock.recv(4)
    sock.sendall(pk.subscribe(1, [topic_filter], qos=0))
    sock.settimeout(0.2)
    buf = bytearray()
    count = 0
    subacked = False
    while not stop.is_set():
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not data:
            break
        buf += data
        pos, n = 0, len(buf)
        while pos + 2 <= n:
            length, mult, i = 0, 1, pos + 1
            while i < n:
                byte = buf[i]
                length += (byte & 0x7F) * mult
                mult <<= 7
                i += 1
                if not byte & 0x80:
                    break
            else:
                break
            if i + length > n:
                break
            kind = buf[pos] >> 4
            if kind == pk.PUBLISH:
                count += 1
            elif kind == pk.SUBACK and not subacked:
                subacked = True
                ready.set()
            pos = i + length
        del buf[:pos]
    sock.close()
    out.put(count)


def load_stage(
    url: str, root: str, *, client: str, gateway: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One flat-out load run with a counting subscriber; its report plus 'delivered'."""
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    sub = ctx.Process(target=_count_subscriber, args=(url, f"{root}/#", ready, stop, out))
    sub.start()
    ready.wait(10)
    spec = LoadSpec(
        mqtt_url=url,
        topic_root=root,
        devices=args.devices,
        rate_hz=0,
        duration_s=args.duration,
        processes=args.processes,
        gateway_size=gateway,
        qos=1,
        client=client,  # type: ignore[arg-type]
        prefix=f"bl{uuid.uuid4().hex[:4]}",
    )
    report = run_load(spec)
    time.sleep(1.0)  # let the broker finish fanning out
    stop.set()
    delivered = out.get(timeout=30)
    sub.join(10)
    keep = ("messages", "samples", "elapsed_s", "messages_per_s", "samples_per_s", "acked")
    result = {k: report[k] for k in keep}
    result["delivered"] = delivered
    if "errors" in report:
        result["errors"] = report["errors"]
    return result


async def _ingest_drain(url: str, database_url: str, spec: LoadSpec) -> dict[str, Any]:
    """Queue ``spec``'s load for the ingest's offline session, then time the ingest draining it."""
    from api.settings import DatabaseSettings
    from api.storage import open_pool
    from ingest.config import IngestSettings, MqttSettings
    from ingest.consumer import Ingest
    from ingest.writer import TelemetryWriter

    mqtt = MqttSettings(
        url=url, topic_root=spec.topic_root, client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}"
    )
    async with open_pool(DatabaseSettings(pool_max=4), database_url) as pool:
        writer = TelemetryWriter(pool)
        async with Ingest(mqtt_url=url, mqtt=mqtt, settings=IngestSettings(), writer=writer) as ing:
            await ing.wait_subscribed(30)  # creates the persistent session
        report = await asyncio.to_thread(run_load, spec)
        t0 = time.monotonic()
        async with Ingest(mqtt_url=url, mqtt=mqtt, settings=IngestSettings(), writer=writer) as ing:
            last, idle_since = -1, time.monotonic()
            while ing.stats.samples_stored < report["samples"]:
                await asyncio.sleep(0.05)
                if ing.stats.samples_stored != last:
                    last, idle_since = ing.stats.samples_stored, time.monotonic()
                elif time.monotonic() - idle_since > 5:
                    break  # stalled: report what it stored
            elapsed = max(ing.stats.last_commit_monotonic, t0 + 1e-9) - t0
            stored = ing.stats.samples_stored
    return {
        "queued_messages": report["messages"],
        "queued_samples": report["samples"],
        "stored_samples": stored,
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(
            report["messages"] * stored / max(report["samples"], 1) / elapsed, 1
        ),
        "samples_per_s": round(stored / elapsed, 1),
    }


def ingest_stages(args: argparse.Namespace) -> dict[str, Any] | None:
    from benchmarks._stack import fresh_database, have_binaries, private_services

    if not have_binaries():
        return None
    with private_services() as (broker, pg):
        out: dict[str, Any] = {}
        # Paced so that the amount is fixed: 40 000 single-sample messages; 300 000 samples
        # in 6 000 gateway frames.
        for name, gateway, devices, ticks in (
            ("single", 1, 2000, 20),
            ("gateway50", 50, 10_000, 30),
        ):
            database_url = fresh_database(pg)
            spec = LoadSpec(
                mqtt_url=broker.url,
                topic_root=f"bench{uuid.uuid4().hex[:6]}/pp/v1",
                devices=devices,
                rate_hz=10,
                duration_s=ticks / 10,
                processes=1,
                gateway_size=gateway,
                qos=1,
                prefix=f"bi{uuid.uuid4().hex[:4]}",
            )
            out[name] = asyncio.run(_ingest_drain(broker.url, database_url, spec))
        return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883")
    p.add_argument("--devices", type=int, default=20_000)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per load stage")
    p.add_argument("--ingest", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args()
    root = f"bench{uuid.uuid4().hex[:8]}/pp/v1"
    stages: dict[str, dict[str, Any]] = {}
    for client in ("raw", "paho"):
        for name, gateway in (("single", 1), ("gateway50", 50)):
            stages[f"{client}_{name}"] = load_stage(
                args.mqtt_url, root, client=client, gateway=gateway, args=args
            )
    result: dict[str, Any] = {
        "benchmark": "loadgen",
        "broker": args.mqtt_url,
        "devices": args.devices,
        "processes": args.processes,
        "qos": 1,
        "encoding": "binary",
        "candidate": {
            "client": "raw",
            "single": stages["raw_single"],
            "gateway50": stages["raw_gateway50"],
        },
        "baseline": {
            "client": "paho",
            "single": stages["paho_single"],
            "gateway50": stages["paho_gateway50"],
        },
        "ratio_single_msgs_per_s": round(
            stages["raw_single"]["messages_per_s"]
            / max(stages["paho_single"]["messages_per_s"], 1e-9),
            2,
        ),
        "ratio_gateway50_samples_per_s": round(
            stages["raw_gateway50"]["samples_per_s"]
            / max(stages["paho_gateway50"]["samples_per_s"], 1e-9),
            2,
        ),
    }
    ingest = ingest_stages(args) if args.ingest else None
    if ingest is not None:
        result["ingest"] = ingest
        result["ratio_load_vs_ingest_single"] = round(
            stages["raw_single"]["samples_per_s"] / max(ingest["single"]["samples_per_s"], 1e-9), 2
        )
        result["ratio_load_vs_ingest_gateway50"] = round(
            stages["raw_gateway50"]["samples_per_s"]
            / max(ingest["gateway50"]["samples_per_s"], 1e-9),
            2,
        )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
