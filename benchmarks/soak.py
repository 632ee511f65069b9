"""Soak and faults: the 5 000-device load with incidents for N minutes while the broker is
restarted, PostgreSQL is restarted and the service is killed with SIGKILL at random (seeded)
moments; then every sample the simulator sent must be stored exactly once and every incident
must have produced its action. Prints one JSON report.

Set-up (all private, in a temporary directory): a Mosquitto with the project's delivery
settings (``deploy/mosquitto.conf``, persistence on), a PostgreSQL cluster, a migrated
database with the scenario's permits raised, approved and activated through `PermitService`
(`api.demo_seed`), and the service itself — ``python -m api serve`` configured only through
``PP_*`` variables — in a subprocess whose resident memory is sampled every second.

The simulator (`firmware_sim.Player`) plays a scenario built for the run
(`benchmarks/_soak_scenario.py`): ``--devices`` background wearables on one shared
connection, and every ``--incident-every-s`` a wave of three incidents on live permits — an
O2-deficient confined space (rule: evacuate the permit's people and suspend it), an SOS and a
watcher walking away from a hot-work yard (rules: man-down rescue; suspend the permit and
tell everyone on it to stop work). Every wearable publishes at QoS 1 with
store and forward: a frame whose PUBACK does not come back (broker gone) is kept and sent
again after the reconnect, so **"sent" means acknowledged by the broker** (the player's
count), and each device numbers its samples 1, 2, 3 … so the database can be checked device
by device for gaps and doubles.

Faults, one at a time at seeded random moments (equal numbers of each kind, in random
order): ``broker`` — Mosquitto stopped with SIGTERM (it saves its sessions) and started again
after 1-5 s; ``postgres`` — ``pg_ctl stop -m fast``, 2-10 s down, started again; ``kill`` —
SIGKILL to the service, started again after 0-5 s. A Mosquitto *crash* would lose what it
acknowledged since its last autosave (docs/operations.md): not a fault this soak injects.

Run: ``.venv/bin/python benchmarks/soak.py [--minutes 30] [--devices 5000] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import shutil
import sys
import tempfile
import time
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
from api.storage import migrate, open_pool  # noqa: E402
from benchmarks import _soak_check as check  # noqa: E402
from benchmarks._soak_scenario import SITE, Wave, build  # noqa: E402
from benchmarks._soak_service import Service  # noqa: E402
from firmware_sim.player import Player  # noqa: E402
from firmware_sim.scenario import Scenario  # noqa: E402
from firmware_sim.simulation import Simulation  # noqa: E402
from permits.config import PermitSettings  # noqa: E402
from permits.service import PermitService  # noqa: E402
from tests import services  # noqa: E402

log = logging.getLogger("soak")

KINDS = ("broker", "postgres", "kill")
SENT_MEANS = (
    "samples whose QoS 1 PUBACK the simulator received; a frame not acknowledged (broker "
    "gone) stays in the device's store-and-forward buffer and is sent again after the "
    "reconnect, so every sample measured is eventually sent unless still buffered at the end"
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
    settle_s: float = 90.0
    workdir: Path | None = None
    keep: bool = False


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
    service: Service
    workdir: Path
    faults: list[Fault] = field(default_factory=list)
    kills_ms: list[int] = field(default_factory=list)


# --------------------------------------------------------------------------- plan


def plan_faults(opts: SoakOptions, rng: random.Random) -> list[Fault]:
    """Seeded fault moments: one per slot of ``fault_every_s`` (at least one of each kind),
    each at a random moment of its slot, kinds in random order, never in the last 40 s."""
    duration = opts.minutes * 60.0
    window = duration - opts.lead_s - 40.0
    n = max(len(KINDS), math.floor(window / opts.fault_every_s))
    kinds: list[str] = []
    while len(kinds) < n:
        triple = list(KINDS)
        rng.shuffle(triple)
        kinds += triple
    slot = window / n
    down = {"broker": (1.0, 5.0), "postgres": (2.0, 10.0), "kill": (0.0, 5.0)}
    out = []
    for k, kind in enumerate(kinds[:n]):
        # The first 60 % of a slot: a fault and its recovery finish inside their slot.
        at = opts.lead_s + k * slot + rng.uniform(0.0, 0.6 * slot)
        out.append(Fault(kind, round(at, 1), round(rng.uniform(*down[kind]), 1)))
    return out


# --------------------------------------------------------------------------- faults


async def _inject(world: _World, fault: Fault, t0: float) -> None:
    started = time.monotonic()
    try:
        if fault.kind == "broker":
            await asyncio.to_thread(world.broker.restart, fault.down_s)
        elif fault.kind == "postgres":
            await asyncio.to_thread(world.postgres.stop)
            await asyncio.sleep(fault.down_s)
            await asyncio.to_thread(world.postgres.start)
        else:
            world.kills_ms.append(time.time_ns() // 1_000_000)
            await asyncio.to_thread(world.service.kill)
            await asyncio.sleep(fault.down_s)
            await asyncio.to_thread(world.service.start)
        fault.done_at_s = round(time.monotonic() - t0, 1)
        async with asyncio.timeout(180):
            while await asyncio.to_thread(world.service.health) is None:
                await asyncio.sleep(0.2)
        fault.healthy_after_s = round(time.monotonic() - started, 1)
    except Exception as exc:  # a fault that cannot be injected is reported, not raised
        fault.error = repr(exc)
        log.exception("fault %s failed", fault.kind)


async def _faults(world: _World, plan: list[Fault], t0: float) -> None:
    for fault in plan:
        await asyncio.sleep(max(0.0, t0 + fault.at_s - time.monotonic()))
        log.info("fault at %.0f s: %s (%.1f s)", fault.at_s, fault.kind, fault.down_s)
        await _inject(world, fault, t0)
        world.faults.append(fault)


# --------------------------------------------------------------------------- set-up


def _start_world(opts: SoakOptions, workdir: Path) -> _World:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    bindir = services.find_pg_bindir()
    if not Path(binary).exists() or bindir is None:
        raise RuntimeError("the soak needs mosquitto and PostgreSQL binaries on this machine")
    broker = services.Mosquitto(binary)
    broker.start()
    postgres = services.PrivatePostgres(bindir)
    postgres.start()
    services.create_database(postgres.url, "soak")
    url = services.database_url(postgres.url, "soak")
    migrate(url)
    env = {
        "PP_MQTT_URL": broker.url,
        "PP_MQTT_TOPIC_ROOT": "soak/pp/v1",
        "PP_MQTT_CLIENT_ID": "soak-ingest",
        "PP_DATABASE_URL": url,
        "PP_DATA_DIR": str(workdir / "data"),
    }
    if opts.snapshot_s is not None:
        env["PP_ENFORCEMENT_SNAPSHOT_S"] = str(opts.snapshot_s)
    service = Service(env, workdir / "service.log")
    return _World(broker, postgres, url, service, workdir)


async def _seed_permits(world: _World, scenario: Scenario) -> int:
    """The scenario's people, devices and permits, activated the way a plant would."""
    settings = DatabaseSettings(url=world.database_url, pool_max=2)
    async with (
        open_pool(settings, world.database_url) as pool,
        PermitService(
            pool=pool,
            settings=PermitSettings(),
            data_dir=world.workdir / "data",
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


async def _drain(world: _World, expected: int, timeout_s: float) -> int:
    """Wait until the service has stored ``expected`` samples (or stops making progress)."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with _db(world) as conn:
            n = check.stored_total(conn)
        if n >= expected:
            return n
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > 60:
            return n
        await asyncio.sleep(1.0)
    return last


async def _settle(world: _World, incidents: list[check.Injected], settle_s: float) -> None:
    """Give the last actions (and evacuation acknowledgements) time to land."""
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        with _db(world) as conn:
            acts = check.incident_actions(conn, incidents, world.kills_ms)
        if _all_acted_on(acts):
            return
        await asyncio.sleep(2.0)


def _rss(world: _World, t_play: float) -> dict[str, Any]:
    lives = world.service.lives
    everything = [(t, m) for life in lives for t, m in life.rss]
    steady = [m for t, m in everything if t >= t_play + 60.0]
    return {
        "start": round(steady[0], 1) if steady else None,
        "end": round(everything[-1][1], 1) if everything else None,
        "max": round(max(m for _, m in everything), 1) if everything else None,
        "note": "start: first sample 60 s into play (5 000 devices known); end: last sample "
        "before the graceful stop; max over every incarnation",
        "incarnations": [life.summary(t_play) for life in lives],
    }


# --------------------------------------------------------------------------- run


async def run_soak(opts: SoakOptions) -> dict[str, Any]:
    """Run the soak; returns the report (also when a check fails: ``ok`` says)."""
    t_start = time.monotonic()
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="pp-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(opts.seed)
    duration = opts.minutes * 60.0
    scenario, waves = build(
        duration_s=duration,
        devices=opts.devices,
        every_s=opts.incident_every_s,
        lead_s=opts.lead_s,
        seed=opts.seed,
    )
    plan = plan_faults(opts, rng)
    world = await asyncio.to_thread(_start_world, opts, workdir)
    try:
        permits = await _seed_permits(world, scenario)
        ready_s = await asyncio.to_thread(world.service.start)
        t_setup = time.monotonic() - t_start
        return await _play_and_check(world, opts, scenario, waves, plan, permits, ready_s, t_setup)
    finally:
        world.service.close()
        world.broker.close()
        world.postgres.close()
        if not opts.keep:
            shutil.rmtree(workdir / "data", ignore_errors=True)


async def _play_and_check(
    world: _World,
    opts: SoakOptions,
    scenario: Scenario,
    waves: list[Wave],
    plan: list[Fault],
    permits: int,
    ready_s: float,
    t_setup: float,
) -> dict[str, Any]:
    sim = Simulation(scenario, start_ms=time.time_ns() // 1_000_000, record_truth=False)
    player = Player(sim, mqtt_url=world.broker.url, topic_root="soak/pp/v1", site=SITE)
    ticks = math.ceil(opts.minutes * 60.0 / sim.dt - 1e-9)
    t_play = time.monotonic()
    faults = asyncio.create_task(_faults(world, plan, t_play), name="soak-faults")
    try:
        stats = await player.run(ticks)
    finally:
        await faults  # every fault has ended (and recovered) before the checks
    t_played = time.monotonic()
    expected = {d: int(sim.seq[i]) for i, d in enumerate(sim.devices)}
    unsent = sum(len(r.saf) for r in player.runners)
    dropped = sum(r.saf.dropped for r in player.runners)
    stored = await _drain(world, stats.samples, opts.drain_timeout_s)
    t_drained = time.monotonic()
    incidents = check.injected(waves, sim.start_ms)
    await _settle(world, incidents, opts.settle_s)
    t_settled = time.monotonic()
    health = world.service.health()
    exit_code = await asyncio.to_thread(world.service.stop)
    rss = _rss(world, t_play)  # its last sample was taken just before the stop
    with _db(world) as conn:
        samples = check.sample_counts(conn, expected)
        actions = check.incident_actions(conn, incidents, world.kills_ms, sim.start_ms)
    produced = int(np.sum(sim.seq))
    samples = {
        "sent": stats.samples,
        "sent_means": SENT_MEANS,
        "measured": produced,
        "unsent_at_end": unsent,
        "dropped_by_device_buffers": dropped,
        **samples,
        "replayed_after_reconnect": stats.replayed_samples,
        "publisher_reconnects": stats.reconnects,
    }
    exactly_once = (
        samples["stored"] == stats.samples == produced
        and samples["missing"] == 0
        and samples["duplicates"] == 0
        and samples["devices_incomplete"] == 0
        and unsent == 0
        and dropped == 0
    )
    restarts = {k: sum(f.kind == k and f.error is None for f in world.faults) for k in KINDS}
    return {
        "soak": {
            "minutes": opts.minutes,
            "devices": opts.devices + len(scenario.workers),
            "background_devices": opts.devices,
            "rate_hz": scenario.rate_hz,
            "seed": opts.seed,
            "waves": len(waves),
            "permits_active_at_start": permits,
            "service": "python -m api serve (PP_* environment)",
            "snapshot_s": opts.snapshot_s,
            "workdir": str(world.workdir),
        },
        "ok": exactly_once and _all_acted_on(actions),
        "exactly_once": exactly_once,
        "samples": samples,
        "incidents": actions,
        "rss_mb": rss,
        "restarts": restarts,
        "faults": [asdict(f) for f in world.faults],
        "service_at_end": {"health": health, "exit_code_on_sigterm": exit_code},
        "durations_s": {
            "setup": round(t_setup, 1),
            "service_ready_first": round(ready_s, 1),
            "play": round(t_played - t_play, 1),
            "drain": round(t_drained - t_played, 1),
            "settle": round(t_settled - t_drained, 1),
            "total": round(time.monotonic() - t_play + t_setup, 1),
        },
        "stored_when_drained": stored,
    }


def _all_acted_on(actions: dict[str, Any]) -> bool:
    """Every incident decided, its commands sent to everyone on the permit, its permit
    suspended where the rule suspends it."""
    return bool(
        actions["acted_on"] == actions["injected"]
        and not actions["commands_missing"]
        and not actions["permit_not_suspended"]
    )


def _args(argv: list[str] | None) -> SoakOptions:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--devices", type=int, default=5000, help="background wearables")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fault-every-s", type=float, default=120.0)
    p.add_argument("--incident-every-s", type=float, default=90.0)
    p.add_argument("--snapshot-s", type=float, default=None)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the service's data directory")
    a = p.parse_args(argv)
    return SoakOptions(
        minutes=a.minutes,
        devices=a.devices,
        seed=a.seed,
        fault_every_s=a.fault_every_s,
        incident_every_s=a.incident_every_s,
        snapshot_s=a.snapshot_s,
        workdir=a.workdir,
        keep=a.keep,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("firmware_sim").setLevel(logging.WARNING)
    report = asyncio.run(run_soak(_args(argv)))
    print(orjson.dumps(report).decode(), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
