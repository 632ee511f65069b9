"""Benchmark of the control room's fan-out: does serving 200 live clients and 1 000 supervisor
phones slow the ingest, and how late do they get their messages?

Each run starts the whole service in this process (``api.app.create_app``: ingest, detectors,
enforcement, permits, the WebSocket hubs) on a private Mosquitto and PostgreSQL, then
publishes the 5 000-device load (``firmware_sim`` load mode: pre-encoded single-sample binary
frames, QoS 1, 5 sites × 1 000 devices, 10 Hz per device: 50 000 messages/s offered) and
measures the ingest rate: samples stored between the first and the last commit. The
publisher is faster than the ingest, so the broker queues and the ingest runs at its capacity.

- baseline: no WebSocket clients;
- candidate: the same load with, connected beforehand from a separate process, 200 `/ws/live`
  clients (each subscribed to one site — 1 000 devices — at 1 Hz: the newest sample of every
  device that changed) and 1 000 `/ws/supervisor` clients (one user each); during the run the
  server also sends an event to every live client every second and a push to every supervisor
  every 2 s (an evacuation storm).

Delivery lag is measured on the clients: receipt time − the server's send stamp (telemetry
frames carry ``ts_ms``; pushes and events carry ``sent_ms``), per client, then the p99 of each
client and their median and maximum. Clients run on the same 2 cores as the server (so the
candidate also pays their CPU: a pessimistic setting).

One run's ingest window is short (seconds) and swings with whatever else the machine does:
``--repeat N`` runs N baseline/candidate pairs alternately and reports the median of the
pairs' ratios (``pair_ratios`` lists them all).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._service import fresh_database, pct, private_services, serve

SITES = 5
SECRET = "bench-fanout-signing-key-0123456789abcdefghij"


# -- clients (their own process) ------------------------------------------------------------------


def _clients_main(
    url: str,
    tokens: dict[str, list[str]],
    sites: list[str],
    rate_hz: float,
    ready: Any,
    stop: Any,
    out: Any,
) -> None:
    out.put(asyncio.run(_clients(url, tokens, sites, rate_hz, ready, stop)))


async def _clients(
    url: str,
    tokens: dict[str, list[str]],
    sites: list[str],
    rate_hz: float,
    ready: Any,
    stop: Any,
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    lags: dict[str, list[list[float]]] = {"telemetry": [], "event": [], "push": []}
    counts = {"telemetry_samples": 0, "closed": 0}
    gate = asyncio.Semaphore(50)
    connected = 0

    async def one(kind: str, token: str, site: str | None) -> None:
        nonlocal connected
        mine: dict[str, list[float]] = {"telemetry": [], "event": [], "push": []}
        async with gate:
            ws = await connect(f"{url}/ws/{kind}", max_size=None, open_timeout=60)
            await ws.send(orjson.dumps({"type": "auth", "access_token": token}).decode())
            assert orjson.loads(await ws.recv())["type"] == "authenticated"
            if kind == "live":
                sub = {"type": "subscribe", "sites": [site], "rate_hz": rate_hz}
                await ws.send(orjson.dumps(sub).decode())
            # Connected = the server has set the stream up (a supervisor's replay included), so
            # that the run measures the fan-out, not 1 200 connections being opened.
            first = "subscribed" if kind == "live" else "hello"
            while orjson.loads(await ws.recv())["type"] != first:
                pass
            connected += 1
        try:
            async for raw in ws:
                now = time.time() * 1000
                msg = orjson.loads(raw)
                t = msg.get("type")
                if t == "ping":
                    await ws.send('{"type": "pong"}')
                elif t == "telemetry":
                    mine["telemetry"].append(now - msg["ts_ms"])
                    counts["telemetry_samples"] += len(msg["samples"]["device_id"])
                elif t == "event" and "sent_ms" in msg["event"]:
                    mine["event"].append(now - msg["event"]["sent_ms"])
                elif t == "push" and "sent_ms" in msg:
                    mine["push"].append(now - msg["sent_ms"])
        except Exception:
            counts["closed"] += 1
        finally:
            for k, v in mine.items():
                if v:
                    lags[k].append(v)

    tasks = [
        asyncio.create_task(one("live", tok, sites[i % len(sites)]))
        for i, tok in enumerate(tokens["live"])
    ] + [asyncio.create_task(one("supervisor", tok, None)) for tok in tokens["supervisor"]]
    while connected < len(tasks):
        await asyncio.sleep(0.1)
        if any(t.done() and t.exception() for t in tasks):
            raise next(t.exception() for t in tasks if t.done() and t.exception())  # type: ignore[misc]
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.1)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "connected": connected,
        "telemetry_samples": counts["telemetry_samples"],
        "dropped": counts["closed"],
        "lag_ms": {k: _summary(v) for k, v in lags.items()},
    }


def _summary(per_client: list[list[float]]) -> dict[str, Any]:
    flat = [x for c in per_client for x in c]
    p99s = [pct(c, 0.99) for c in per_client]
    return {
        "clients": len(per_client),
        "messages": len(flat),
        "p50": round(pct(flat, 0.5), 1),
        "p99": round(pct(flat, 0.99), 1),
        "per_client_p99_median": round(pct(p99s, 0.5), 1),
        "per_client_p99_max": round(max(p99s), 1) if p99s else None,
    }


# -- one run --------------------------------------------------------------------------------------


async def _storm(rt: Any, users: list[str], sites: list[str], stop: asyncio.Event) -> int:
    """Every second: an event to every live client (one per site); every 2 s: a push to
    every supervisor (500 pushes a second: an evacuation storm, far above a plant's day)."""
    rounds = 0
    while not stop.is_set():
        now = time.time() * 1000
        for site in sites:
            rt.live.publish_event({"type": "bench", "sent_ms": now, "site_id": site})
        if rounds % 2 == 0:
            for user in users:
                rt.push_hub.deliver(user, {"type": "push", "kind": "bench", "sent_ms": now})
        rounds += 1
        await asyncio.sleep(1.0)
    return rounds


async def one_run(
    *,
    mqtt_url: str,
    database_url: str,
    data_dir: Path,
    devices: int,
    ticks: int,
    clients: bool,
    live_rate_hz: float = 1.0,
    device_rate_hz: float = 10.0,
) -> dict[str, Any]:
    from pydantic import SecretStr

    from api.app import create_app
    from api.auth import AuthSettings, Principal, Role, TokenService
    from api.settings import DatabaseSettings, Settings
    from firmware_sim.loadgen import LoadSpec, run_load
    from ingest.config import MqttSettings

    root = f"bf{uuid.uuid4().hex[:6]}/pp/v1"
    settings = Settings(
        data_dir=data_dir,
        mqtt=MqttSettings(url=mqtt_url, topic_root=root, client_id=f"bf-{uuid.uuid4().hex[:6]}"),
        database=DatabaseSettings(url=database_url, pool_max=8),
        auth=AuthSettings(secret=SecretStr(SECRET)),
    )
    sites = [f"site-{k}" for k in range(SITES)]
    tokens_svc = TokenService.from_settings(settings.auth)

    def token(name: str, role: Role) -> str:
        return tokens_svc.access_token(Principal(name, frozenset({role}), None)).token

    sup_users = [f"sup{k:04d}" for k in range(1000)]
    tokens = {
        "live": [token(f"cr{k:03d}", Role.CONTROL_ROOM) for k in range(200)] if clients else [],
        "supervisor": [token(u, Role.SUPERVISOR) for u in sup_users] if clients else [],
    }
    app = create_app(settings)
    server, task, host = await serve(app, settings)
    rt = app.state.runtime
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = None
    if clients:
        proc = ctx.Process(
            target=_clients_main,
            args=(f"ws://{host}", tokens, sites, live_rate_hz, ready, stop, out),
        )
        proc.start()
        while not ready.wait(0.05):
            await asyncio.sleep(0.05)
            if not proc.is_alive():
                raise RuntimeError("client process died while connecting")
    storm_stop = asyncio.Event()
    storm = asyncio.create_task(
        _storm(rt, sup_users if clients else [], sites if clients else [], storm_stop)
    )
    stats = rt.ingest.stats
    before = stats.samples_stored
    cpu0 = time.process_time()
    per_site = devices // SITES
    specs = [
        LoadSpec(
            mqtt_url=mqtt_url,
            topic_root=root,
            site=site,
            devices=per_site,
            # 10 Hz: paced so that the amount is fixed, far above what the ingest takes (its
            # capacity is measured); 1 Hz: the plant's load (does the ingest keep up?)
            rate_hz=device_rate_hz,
            duration_s=ticks / device_rate_hz,
            processes=1,
            qos=1,
            prefix=f"{site}-d",
            seed=k + 1,
        )
        for k, site in enumerate(sites)
    ]
    t_pub = time.monotonic()
    reports = await asyncio.gather(*(asyncio.to_thread(run_load, s) for s in specs))
    published = sum(r["samples"] for r in reports)
    pub_s = time.monotonic() - t_pub
    first_commit = None
    idle_since, last = time.monotonic(), -1
    while stats.samples_stored - before < published:
        await asyncio.sleep(0.05)
        if first_commit is None and stats.samples_stored > before:
            first_commit = time.monotonic()
        if stats.samples_stored != last:
            idle_since, last = time.monotonic(), stats.samples_stored
        elif time.monotonic() - idle_since > 10:
            break
    stored = stats.samples_stored - before
    cpu_s = time.process_time() - cpu0
    # From the first to the last commit: process start-up of the publishers is not counted.
    elapsed = stats.last_commit_monotonic - (first_commit or t_pub)
    storm_stop.set()
    pushes_sent = await storm
    result: dict[str, Any] = {
        "published_samples": published,
        "publish_s": round(pub_s, 2),
        "stored_samples": stored,
        "ingest_s": round(elapsed, 2),
        "samples_per_s": round(stored / elapsed, 1),
        "server_cpu_s": round(cpu_s, 2),
        "server_cpu_us_per_sample": round(1e6 * cpu_s / max(stored, 1), 1),
        "live_hub_dropped_clients": rt.live.dropped_clients,
    }
    if proc is not None:
        await asyncio.sleep(1.0)  # the last frames in flight
        stop.set()
        result["clients"] = await asyncio.to_thread(out.get, True, 60)
        result["clients"]["storm_rounds"] = pushes_sent
        proc.join(30)
    server.should_exit = True
    await task
    return result


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--devices", type=int, default=5000)
    p.add_argument("--ticks", type=int, default=12, help="samples per device in each run")
    p.add_argument("--live-rate", type=float, default=1.0, help="rate_hz of the live clients")
    p.add_argument(
        "--device-rate",
        type=float,
        default=10.0,
        help="samples per second per device: 10 (default) saturates the ingest and measures its"
        " capacity; 1 is the plant's load, where the question is whether the ingest keeps up",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="baseline/candidate pairs, run alternately; the medians are reported (the ingest"
        " rate of one short run swings with whatever else the machine does)",
    )
    args = p.parse_args()
    import logging
    import tempfile

    logging.basicConfig(level=logging.WARNING)
    pairs: list[dict[str, Any]] = []
    with private_services() as found:
        if found is None:
            print(orjson.dumps({"error": "needs PostgreSQL and Mosquitto binaries"}).decode())
            return
        pg, broker = found
        for _ in range(args.repeat):
            runs: dict[str, Any] = {}
            for name, clients in (("baseline", False), ("candidate", True)):
                with fresh_database(pg.url, "bf") as url, tempfile.TemporaryDirectory() as tmp:
                    runs[name] = asyncio.run(
                        one_run(
                            mqtt_url=broker.url,
                            database_url=url,
                            data_dir=Path(tmp),
                            devices=args.devices,
                            ticks=args.ticks,
                            clients=clients,
                            live_rate_hz=args.live_rate,
                            device_rate_hz=args.device_rate,
                        )
                    )
            runs["ratio"] = round(
                runs["candidate"]["samples_per_s"] / runs["baseline"]["samples_per_s"], 3
            )
            runs["load_average"] = [round(x, 2) for x in os.getloadavg()]
            pairs.append(runs)
    base = statistics.median(r["baseline"]["samples_per_s"] for r in pairs)
    cand = statistics.median(r["candidate"]["samples_per_s"] for r in pairs)
    ratio = statistics.median(r["ratio"] for r in pairs)
    lags = [r["candidate"]["clients"]["lag_ms"] for r in pairs]
    runs = pairs[-1]
    print(
        orjson.dumps(
            {
                "benchmark": "fanout",
                "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "load": f"{args.devices} devices × {args.ticks} single-sample frames at"
                f" {args.device_rate:g} Hz per device, QoS 1",
                "clients": f"200 /ws/live (one site of 1 000 devices each, {args.live_rate} Hz)"
                " + 1 000 /ws/supervisor",
                "pairs": len(pairs),
                "baseline_samples_per_s": base,
                "candidate_samples_per_s": cand,
                "ratio": ratio,  # the median of the pairs' ratios
                "drop_pct": round(100 * (1 - ratio), 1),
                "target_drop_pct_max": 10,
                "met": ratio >= 0.9,
                "pair_ratios": [r["ratio"] for r in pairs],
                "lag_p99_ms": {
                    k: statistics.median(lag[k]["p99"] for lag in lags) for k in lags[0]
                },
                "server_cpu_us_per_sample": {
                    k: statistics.median(r[k]["server_cpu_us_per_sample"] for r in pairs)
                    for k in ("baseline", "candidate")
                },
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "runs": runs,  # the last pair in full
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


if __name__ == "__main__":
    main()
