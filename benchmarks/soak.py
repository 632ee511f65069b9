"""Soak and faults: the 5 000-device load with incidents for N minutes while the broker is
restarted, PostgreSQL is restarted and the service is killed with SIGKILL at random (seeded)
moments; then every sample the simulator sent must be stored exactly once, every incident
must have produced its action and the service's memory must have stayed flat. Prints one
JSON report; exits 1 when an invariant fails (2 when the soak could not run).

Set-up (all private, in temporary directories removed afterwards): a Mosquitto with the
project's delivery settings (``deploy/mosquitto.conf``, persistence on) and a PostgreSQL
cluster (``benchmarks/_stack.py`` over ``tests/services.py``), a migrated database with the
scenario's permits raised, approved and activated through `PermitService`
(``api.demo_seed``), and the service itself — ``python -m api serve`` configured only
through ``PP_*`` variables — as a separate process whose resident memory is sampled every
second (``benchmarks/_soak_service.py``).

The simulator (`firmware_sim.Player`, in this process) plays a scenario built for the run
(``benchmarks/_soak_scenario.py``): ``--devices`` background wearables at 1 Hz on one shared
connection, and every ``--incident-every-s`` a wave of incidents on live permits: an
O2-deficient confined space (rule: evacuate everyone on the permit and suspend it), an SOS
and a fall with no motion (rule: man-down rescue pushes), heat strain (rule: rest command,
worker unfit; only in waves with five minutes left) and a watcher walking away (rule: suspend
the permit, stop-work to everyone on it). Every wearable publishes at QoS 1 with store and
forward: a frame whose PUBACK does not come back (broker gone) stays in the device's buffer
and is sent again after the reconnect, so **"sent" means acknowledged by the broker** (what
the devices believe they delivered), and each device numbers its samples 1, 2, 3 … so the
database can be checked device by device for gaps and doubles.

Faults, one at a time at seeded random moments (about equal numbers of each kind, at least
one of each): ``broker`` — Mosquitto stopped with SIGTERM (it saves its sessions) and started
again after 1-5 s; ``postgres`` — ``pg_ctl stop -m fast``, 2-10 s down, started again;
``kill`` — SIGKILL to the service, started again after 0-5 s. A Mosquitto *crash* would lose
what it acknowledged since its last autosave (docs/operations.md): not a fault injected here.

Run: ``.venv/bin/python benchmarks/soak.py [--minutes 30] [--devices 5000] [--seed 1]``.
Ctrl-C (or SIGTERM) stops it cleanly: the service, the broker and PostgreSQL are stopped and
the temporary directories removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api.demo_seed import demo_verifier, seed  # noqa: E402
from api.settings import DatabaseSettings  # noqa: E402
from api.storage import open_pool  # noqa: E402
from benchmarks import _soak_check as check  # noqa: E402
from benchmarks._soak_scenario import SITE, Wave, build  # noqa: E402
from benchmarks._soak_service import ServiceProcess  # noqa: E402
from benchmarks._stack import fresh_database, private_services  # noqa: E402
from firmware_sim.player import Player  # noqa: E402
from firmware_sim.scenario import Scenario  # noqa: E402
from firmware_sim.simulation import Simulation  # noqa: E402
from permits.config import PermitSettings  # noqa: E402
from permits.service import PermitService  # noqa: E402
from tests import services  # noqa: E402

log = logging.getLogger("soak")

KINDS = ("broker", "postgres", "kill")
TOPIC_ROOT = "soak/pp/v1"
SENT_MEANS = (
    "samples whose QoS 1 PUBACK the simulator received (what the devices believe they "
    "delivered); a frame not acknowledged (broker gone) stays in the device's store-and-"
    "forward buffer and is sent again after the reconnect"
)


@dataclass
class SoakOptions:
    """What to run. Defaults: the long soak of issue 9."""

    minutes: float = 30.0
    devices: int = 5000
    seed: int = 1
    fault_every_s: float = 120.0
    incident_every_s: float = 90.0
    lead_s: float = 20.0
    snapshot_s: float | None = None  # the service's PP_ENFORCEMENT_SNAPSHOT_S; None: default
    drain_timeout_s: float = 300.0
    settle_s: float = 120.0
    rss_limit_mb: float = 1536.0
    rss_growth_max: float = 1.5
    workdir: Path | None = None


@dataclass
class Fault:
    kind: str
    at_s: float
    down_s: float
    done_at_s: float | None = None
    healthy_after_s: float | None = None  # from the fault's start until /healthz is 200 again
    error: str | None = None


@dataclass
class _World:
    broker: services.Mosquitto
    postgres: services.PrivatePostgres
    database_url: str
    service: ServiceProcess
    workdir: Path
    faults: list[Fault] = field(default_factory=list)
    kills_ms: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------- plan


def plan_faults(opts: SoakOptions, rng: random.Random) -> list[Fault]:
    """Seeded fault moments: one per slot of ``fault_every_s`` (at least one of each kind),
    each at a random moment of the first 60 % of its slot, kinds shuffled in threes, never in
    the last 40 s."""
    window = opts.minutes * 60.0 - opts.lead_s - 40.0
    n = max(len(KINDS), math.floor(window / opts.fault_every_s))
    kinds: list[str] = []
    while len(kinds) < n:
        three = list(KINDS)
        rng.shuffle(three)
        kinds += three
    slot = window / n
    down = {"broker": (1.0, 5.0), "postgres": (2.0, 10.0), "kill": (0.0, 5.0)}
    out = []
    for k, kind in enumerate(kinds[:n]):
        at = opts.lead_s + k * slot + rng.uniform(0.0, 0.6 * slot)
        out.append(Fault(kind, round(at, 1), round(rng.uniform(*down[kind]), 1)))
    return out


# --------------------------------------------------------------------------- faults


async def _inject(world: _World, fault: Fault, t0: float) -> None:
    started = time.monotonic()
    try:
        if fault.kind == "broker":
            await asyncio.to_thread(world.broker.stop)
            await asyncio.sleep(fault.down_s)
            await asyncio.to_thread(world.broker.start)
        elif fault.kind == "postgres":
            await asyncio.to_thread(world.postgres.stop)
            await asyncio.sleep(fault.down_s)
            await asyncio.to_thread(world.postgres.start)
        else:
            world.kills_ms.append(time.time_ns() // 1_000_000)
            await world.service.kill()
            await asyncio.sleep(fault.down_s)
            await world.service.start()
        fault.done_at_s = round(time.monotonic() - t0, 1)
        async with asyncio.timeout(180):
            while await world.service.health() is None:
                await asyncio.sleep(0.2)
        fault.healthy_after_s = round(time.monotonic() - started, 1)
    except Exception as exc:  # a fault that cannot be injected is reported (and fails the run)
        fault.error = repr(exc)
        log.exception("fault %s failed", fault.kind)


async def _faults(world: _World, plan: list[Fault], t0: float) -> None:
    for fault in plan:
        await asyncio.sleep(max(0.0, t0 + fault.at_s - time.monotonic()))
        log.info("fault at %.0f s: %s (%.1f s)", fault.at_s, fault.kind, fault.down_s)
        world.faults.append(fault)
        await _inject(world, fault, t0)


# --------------------------------------------------------------------------- set-up


@contextlib.contextmanager
def _workdir(opts: SoakOptions) -> Iterator[Path]:
    if opts.workdir is not None:  # kept for inspection
        opts.workdir.mkdir(parents=True, exist_ok=True)
        yield opts.workdir
        return
    with tempfile.TemporaryDirectory(prefix="pp-soak-") as tmp:
        yield Path(tmp)


def _service_env(opts: SoakOptions, broker_url: str, url: str, workdir: Path) -> dict[str, str]:
    env = {
        "PP_MQTT_URL": broker_url,
        "PP_MQTT_TOPIC_ROOT": TOPIC_ROOT,
        "PP_MQTT_CLIENT_ID": "soak-ingest",
        "PP_DATABASE_URL": url,
        "PP_DATA_DIR": str(workdir / "data"),
    }
    if opts.snapshot_s is not None:
        env["PP_ENFORCEMENT_SNAPSHOT_S"] = str(opts.snapshot_s)
    return env


async def _seed_permits(url: str, scenario: Scenario, workdir: Path) -> int:
    """The scenario's people, devices and permits, activated the way a plant would."""
    async with (
        open_pool(DatabaseSettings(url=url, pool_max=2), url) as pool,
        PermitService(
            pool=pool,
            settings=PermitSettings(),
            data_dir=workdir / "data",
            verifier=demo_verifier(scenario),
        ) as permits,
    ):
        activated = await seed(scenario, pool=pool, permits=permits)
    if len(activated) != len(scenario.permits):
        raise RuntimeError(f"only {len(activated)} of {len(scenario.permits)} permits activated")
    return len(activated)


# --------------------------------------------------------------------------- after play


def _db(world: _World) -> psycopg.Connection[Any]:
    return psycopg.connect(world.database_url, connect_timeout=5)


def _query(world: _World, fn: Any, *args: Any) -> Any:
    with _db(world) as conn:
        return fn(conn, *args)


async def _drain(world: _World, expected: int, timeout_s: float) -> int:
    """Wait until the service has stored ``expected`` samples (or stops making progress)."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = await asyncio.to_thread(_query, world, check.stored_total)
        if n >= expected:
            return int(n)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > 60:
            break
        await asyncio.sleep(1.0)
    return last


async def _settle(world: _World, incidents: list[check.Injected], settle_s: float) -> None:
    """Give the last actions time to land."""
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        acts = await asyncio.to_thread(
            _query, world, check.incident_actions, incidents, world.kills_ms
        )
        if check.all_acted_on(acts):
            return
        await asyncio.sleep(2.0)


def _rss(world: _World, t_play: float, opts: SoakOptions) -> dict[str, Any]:
    """Start: 60 s into an incarnation's life (fleet known); end: its last sample; a life that
    began with a restart counts from that restart. Flat: no incarnation that lived 2 minutes
    grew by more than ``rss_growth_max`` ×, and none passed ``rss_limit_mb``."""
    lives = world.service.lives
    everything = [(t, m) for life in lives for t, m in life.rss]
    peak = max((m for _, m in everything), default=None)
    growth: list[float] = []
    for life in lives:
        steady = [m for t, m in life.rss if t >= life.started + 60.0]
        if steady and life.rss[-1][0] - life.started >= 120.0:
            growth.append(steady[-1] / steady[0])
    steady = [m for life in lives for t, m in life.rss if t >= life.started + 60.0][:1]
    first = steady or [m for life in lives for _, m in life.rss][:1]
    last = lives[-1].rss if lives else []
    return {
        "start": round(first[0], 1) if first else None,
        "end": round(last[-1][1], 1) if last else None,
        "peak": round(peak, 1) if peak is not None else None,
        "growth_max": round(max(growth), 3) if growth else None,
        "flat": bool(peak is not None and peak < opts.rss_limit_mb)
        and all(g <= opts.rss_growth_max for g in growth),
        "note": "start: 60 s into the first life that lasted that long; end: the last sample "
        "of the last life before the graceful stop; growth: last / 60-s value of each life "
        "of 2 min or more",
        "incarnations": [life.summary(t_play) for life in lives],
    }


def _log_tail(path: Path, lines: int = 15) -> list[str]:
    """The service's last error lines (shown when a check fails)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    keep = [ln for ln in text if "ERROR" in ln or "Traceback" in ln or "Error" in ln]
    return keep[-lines:]


# --------------------------------------------------------------------------- run


async def run_soak(opts: SoakOptions) -> dict[str, Any]:
    """Run the soak; returns the report (also when a check fails: ``ok`` says). Whatever
    happens (an error, Ctrl-C, cancellation), the service, broker and PostgreSQL are stopped
    and the temporary directories removed before this returns or raises."""
    t_start = time.monotonic()
    duration = opts.minutes * 60.0
    scenario, waves = build(
        duration_s=duration,
        devices=opts.devices,
        every_s=opts.incident_every_s,
        lead_s=opts.lead_s,
        seed=opts.seed,
    )
    plan = plan_faults(opts, random.Random(opts.seed))
    with _workdir(opts) as workdir, private_services() as (broker, postgres):
        url = await asyncio.to_thread(fresh_database, postgres, "soak")
        permits = await _seed_permits(url, scenario, workdir)
        env = _service_env(opts, broker.url, url, workdir)
        async with ServiceProcess(env, workdir / "service.log") as service:
            world = _World(broker, postgres, url, service, workdir)
            ready_s = await service.start()
            setup_s = time.monotonic() - t_start
            report = await _play_and_check(world, opts, scenario, waves, plan)
        report["soak"]["permits_active_at_start"] = permits
        report["durations_s"]["setup"] = round(setup_s, 1)
        report["durations_s"]["service_ready_first"] = round(ready_s, 1)
        if not report["ok"]:
            report["service_log_errors"] = _log_tail(workdir / "service.log")
        return report


async def _play(
    world: _World, sim: Simulation, plan: list[Fault], ticks: int
) -> tuple[Player, float]:
    """Play and inject the faults side by side; an error in either cancels the other."""
    player = Player(sim, mqtt_url=world.broker.url, topic_root=TOPIC_ROOT, site=SITE)
    t_play = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(player.run(ticks), name="soak-player")
        tg.create_task(_faults(world, plan, t_play), name="soak-faults")
    return player, t_play


async def _play_and_check(
    world: _World, opts: SoakOptions, scenario: Scenario, waves: list[Wave], plan: list[Fault]
) -> dict[str, Any]:
    sim = Simulation(scenario, start_ms=time.time_ns() // 1_000_000, record_truth=False)
    ticks = math.ceil(opts.minutes * 60.0 / sim.dt - 1e-9)
    player, t_play = await _play(world, sim, plan, ticks)
    stats = player.stats
    t_played = time.monotonic()
    expected = {d: int(sim.seq[i]) for i, d in enumerate(sim.devices)}
    unsent = sum(len(r.saf) for r in player.runners)
    dropped = sum(r.saf.dropped for r in player.runners)
    await _drain(world, stats.samples, opts.drain_timeout_s)
    t_drained = time.monotonic()
    incidents = check.injected(waves, sim.start_ms)
    await _settle(world, incidents, opts.settle_s)
    t_settled = time.monotonic()
    health = await world.service.health()
    exit_code = await world.service.stop()
    rss = _rss(world, t_play, opts)
    samples = await asyncio.to_thread(_query, world, check.sample_counts, expected)
    actions = await asyncio.to_thread(
        _query, world, check.incident_actions, incidents, world.kills_ms, sim.start_ms
    )
    measured = int(np.sum(sim.seq))
    samples = {
        "sent": stats.samples,
        "sent_means": SENT_MEANS,
        "measured": measured,
        "unsent_at_end": unsent,
        "dropped_by_device_buffers": dropped,
        **samples,
        "replayed_after_reconnect": stats.replayed_samples,
        "publisher_reconnects": stats.reconnects,
    }
    exactly_once = (
        samples["stored"] == stats.samples == measured
        and samples["missing"] == 0
        and samples["duplicates"] == 0
        and samples["unexpected_rows"] == 0
        and samples["devices_incomplete"] == 0
        and unsent == 0
        and dropped == 0
    )
    restarts = {k: sum(f.kind == k and f.error is None for f in world.faults) for k in KINDS}
    failed_starts = [
        life.summary(t_play) for life in world.service.lives if life.how.startswith("exited")
    ]
    faults_ok = all(f.error is None for f in world.faults) and all(restarts.values())
    acted = check.all_acted_on(actions)
    return {
        "soak": {
            "minutes": opts.minutes,
            "devices": opts.devices + len(scenario.workers),
            "background_devices": opts.devices,
            "rate_hz": round(1.0 / sim.dt, 3),
            "seed": opts.seed,
            "waves": len(waves),
            "service": "python -m api serve (PP_* environment), a separate process",
            "snapshot_s": opts.snapshot_s,
        },
        "ok": exactly_once and acted and rss["flat"] and faults_ok,
        "invariants": {
            "exactly_once": exactly_once,
            "every_incident_acted_on": acted,
            "memory_flat": rss["flat"],
            "every_fault_injected": faults_ok,
        },
        "samples": samples,
        "incidents": actions,
        "rss_mb": rss,
        "restarts": restarts,
        "service_failed_starts": failed_starts,
        "faults": [asdict(f) for f in world.faults],
        "service_at_end": {"health": health, "exit_code_on_sigterm": exit_code},
        "durations_s": {
            "play": round(t_played - t_play, 1),
            "drain": round(t_drained - t_played, 1),
            "settle": round(t_settled - t_drained, 1),
        },
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


# --------------------------------------------------------------------------- command line


def _args(argv: list[str] | None) -> SoakOptions:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--devices", type=int, default=5000, help="background wearables (1 Hz)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fault-every-s", type=float, default=120.0)
    p.add_argument("--incident-every-s", type=float, default=90.0)
    p.add_argument("--snapshot-s", type=float, default=None)
    p.add_argument("--workdir", type=Path, default=None, help="keep the run's files here")
    a = p.parse_args(argv)
    return SoakOptions(
        minutes=a.minutes,
        devices=a.devices,
        seed=a.seed,
        fault_every_s=a.fault_every_s,
        incident_every_s=a.incident_every_s,
        snapshot_s=a.snapshot_s,
        workdir=a.workdir,
    )


async def _main(opts: SoakOptions) -> dict[str, Any]:
    """``run_soak`` with SIGTERM turned into cancellation (Ctrl-C already is)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run_soak(opts)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("firmware_sim").setLevel(logging.WARNING)
    opts = _args(argv)
    try:
        report = asyncio.run(_main(opts))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(orjson.dumps({"ok": False, "error": "interrupted"}).decode(), flush=True)
        return 130
    except Exception as exc:
        log.exception("soak could not run")
        print(orjson.dumps({"ok": False, "error": repr(exc)}).decode(), flush=True)
        return 2
    print(orjson.dumps(report).decode(), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
