"""Enforcement end to end on the real service: telemetry over MQTT → detectors → rules →
device commands, permit transitions, evacuations and supervisor pushes (SPEC §5)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson
import psycopg
import pytest
from websockets.asyncio.client import connect

from api.app import create_app
from api.auth import Principal, Role, TokenService
from api.auth.demo import seed_demo_users
from api.demo_seed import _activate, registry_csv, seed
from api.runtime import Runtime
from api.settings import Settings
from firmware_sim.scenario import load_scenario
from ingest.commands import Ack, AckStatus, parse_command
from ingest.mqtt import client
from ingest.topics import device_topic
from ingest.wire import Sample, encode_binary
from permits.enforcement.config import EnforcementSettings
from permits.errors import RuleViolation
from permits.models import Actor
from tests.conftest import serve_app

SCENARIO = load_scenario("demo.yaml")
SITE = SCENARIO.site.id
FAST = EnforcementSettings(
    command_retry_s=0.5, command_max_attempts=2, command_deadline_s=3, command_expiry_s=10,
    dispatch_tick_s=0.05, tick_s=0.5, refresh_s=5,
)  # fmt: skip


@dataclass
class Plant:
    """The running service with the demo plant seeded, and a way to talk to it."""

    settings: Settings
    url: str
    rt: Runtime
    permits: dict[str, Any] = field(default_factory=dict)  # scenario id → Permit

    @property
    def db(self) -> str:
        assert self.settings.database.url
        return self.settings.database.url

    def area(self, spec_id: str) -> tuple[float, float]:
        p = self.permits[spec_id]
        return p.location.lat, p.location.lon

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()


@contextlib.asynccontextmanager
async def running_plant(settings: Settings) -> AsyncIterator[Plant]:
    registry = settings.data_dir / "registry.csv"
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text(registry_csv(SCENARIO), encoding="utf-8")
    certs = settings.permits.certificates.model_copy(update={"registry_csv": registry})
    permits = settings.permits.model_copy(update={"certificates": certs})
    settings = settings.model_copy(update={"permits": permits})
    app = create_app(settings)
    async with serve_app(app) as url:
        rt: Runtime = app.state.runtime
        await seed(SCENARIO, pool=rt.pool, permits=rt.permits)
        await seed_demo_users(rt.pool, app.state.auth.passwords, site=SITE)
        await rt.enforcement.refresh()
        found = {p.title.split(" ")[0]: p for p in await rt.permits.search(_live())}
        yield Plant(settings, url, rt, found)


def _live() -> Any:
    from permits.repository import SearchFilter

    return SearchFilter(site_id=SITE, state="active")


@pytest.fixture
async def plant(settings: Settings) -> AsyncIterator[Plant]:
    s = settings.model_copy(update={"enforcement": FAST})
    async with running_plant(s) as p:
        yield p


class Devices:
    """Wearables that acknowledge every command (delivered, then done) and record them."""

    def __init__(self, settings: Settings, *, silent: Iterable[str] = ()) -> None:
        self.settings = settings
        self.silent = set(silent)
        self.commands: list[tuple[str, str]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Devices:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await self._task

    async def _run(self) -> None:
        url, root = self.settings.mqtt.url, self.settings.mqtt.topic_root
        assert url
        async with client(url, identifier=f"devs-{uuid.uuid4().hex[:6]}") as mqtt:
            await mqtt.subscribe(f"{root}/+/+/cmd", qos=1)
            self._ready.set()
            async for m in mqtt.messages:
                device = str(m.topic).split("/")[-2]
                cmd = parse_command(m.payload if isinstance(m.payload, bytes) else b"")
                assert not isinstance(cmd, str), cmd
                self.commands.append((device, cmd.action))
                if device in self.silent:
                    continue
                for status in (AckStatus.DELIVERED, AckStatus.DONE):
                    ack = Ack(cmd_id=cmd.cmd_id, device_id=device, status=status, ts_ms=1)
                    topic = device_topic(root, SITE, device, "ack")
                    await mqtt.publish(topic, ack.encode(), qos=1)

    def got(self, action: str) -> set[str]:
        return {d for d, a in self.commands if a == action}


async def publish(settings: Settings, device: str, samples: list[Sample]) -> None:
    assert settings.mqtt.url
    topic = device_topic(settings.mqtt.topic_root, SITE, device, "telemetry")
    async with client(settings.mqtt.url) as mqtt:
        for i in range(0, len(samples), 30):
            await mqtt.publish(topic, encode_binary(samples[i : i + 30]), qos=1)


def series(
    device: str, seconds: int, *, end_ms: int | None = None, seq0: int = 1, **values: Any
) -> list[Sample]:
    """1 Hz samples ending now; ``values`` maps a field to a constant or a function of i."""
    end = end_ms or time.time_ns() // 1_000_000
    base: dict[str, Any] = {
        "hr": 85.0, "skin_temp": 33.5, "spo2": 97.0, "gps_acc": 4.0, "motion": 0.3,
        "battery": 80.0,
    }  # fmt: skip
    out = []
    for i in range(seconds):
        row = {k: (v(i) if callable(v) else v) for k, v in {**base, **values}.items()}
        out.append(Sample(device, seq0 + i, end - (seconds - 1 - i) * 1000, **row))
    return out


def offset(lat: float, lon: float, metres_east: float) -> tuple[float, float]:
    return lat, lon + metres_east / (111_320 * math.cos(math.radians(lat)))


async def until(check: Callable[[], Any], timeout_s: float = 30, what: str = "") -> Any:
    async with asyncio.timeout(timeout_s):
        while not (result := check()):
            await asyncio.sleep(0.1)
    return result


def token(settings: Settings, user: str, *roles: Role) -> str:
    principal = Principal(username=user, roles=frozenset(roles), sites=frozenset({SITE}))
    return TokenService.from_settings(settings.auth).access_token(principal).token


# ---------------------------------------------------------------------------------------------


async def test_confined_space_spo2_collapse_evacuates_suspends_pushes_and_completes(
    plant: Plant,
) -> None:
    """SpO2 < 90 % for 15 s in the tank: evacuate every device on the permit, suspend it,
    push to the supervisor (who acknowledges); complete once everyone is out by GPS."""
    sx = plant.permits["SX-0816"]
    lat, lon = plant.area("SX-0816")
    ws_url = plant.url.replace("http", "ws") + "/ws/supervisor"
    sup = token(plant.settings, "demo-supervisor", Role.SUPERVISOR)
    async with Devices(plant.settings) as devices, connect(ws_url) as ws:
        await ws.send(orjson.dumps({"type": "auth", "access_token": sup}).decode())
        at = {"lat": lat, "lon": lon}
        await publish(
            plant.settings,
            "ww-sx-01",
            series("ww-sx-01", 40, spo2=lambda i: 97 if i < 10 else 84, **at),
        )
        crew = {"ww-sx-01", "ww-sx-02", "ww-sx-w"}
        await until(lambda: devices.got("evacuate") >= crew, what="evacuate commands")
        push = None
        async with asyncio.timeout(20):
            while push is None:
                msg = orjson.loads(await ws.recv())
                if msg["type"] == "push" and msg["permit_id"] == str(sx.permit_id):
                    push = msg
        await ws.send(orjson.dumps({"type": "ack", "push_id": push["push_id"]}).decode())
        await until(
            lambda: plant.rows(
                "SELECT 1 FROM pushes WHERE push_id = %s AND state = 'acked'",
                uuid.UUID(push["push_id"]),
            )
        )
        permit = await plant.rt.permits.get(sx.permit_id)
        assert str(permit.state) == "suspended"
        evac = plant.rows("SELECT state FROM evacuations WHERE permit_id = %s", sx.permit_id)
        assert evac == [("in_progress",)]
        away = offset(lat, lon, 120)
        for n, device in enumerate(sorted(crew)):
            await publish(
                plant.settings, device, series(device, 3, seq0=1000 + n, lat=away[0], lon=away[1])
            )
        await until(
            lambda: plant.rows(
                "SELECT 1 FROM evacuations WHERE permit_id = %s AND state = 'complete'",
                sx.permit_id,
            )
        )
    people = plant.rows(
        "SELECT device_id, acked_at IS NOT NULL, outside_at IS NOT NULL"
        " FROM evacuation_people ORDER BY 1"
    )
    assert people == [(d, True, True) for d in sorted(crew)]
    decided = plant.rows("SELECT rule_id FROM decisions WHERE permit_id = %s", sx.permit_id)
    assert ("confined-space-critical-evacuate",) in decided


async def test_heat_strain_downgrades_worker_who_is_then_blocked_from_permits(plant: Plant) -> None:
    """HR above 180 − age for 3 minutes: rest command, worker unfit, a new permit refused."""
    async with Devices(plant.settings) as devices:
        lat, lon = plant.area("DH-0815")
        hot = series("ww-dh-02", 240, hr=lambda i: 165 + (i % 3), lat=lat, lon=lon)
        await publish(plant.settings, "ww-dh-02", hot)
        await until(lambda: "ww-dh-02" in devices.got("rest"), timeout_s=40, what="rest")
    fitness = plant.rows(
        "SELECT fit, recover_min FROM worker_fitness WHERE worker_id = 'w-li-qiang'"
    )
    assert fitness == [(False, 15.0)]
    area = SCENARIO.area("dh-r101")
    with pytest.raises(RuleViolation) as refused:
        await _activate(
            plant.rt.permits, SCENARIO, "DH-9999", "DH", ["w-li-qiang"], "demo-watcher", area
        )
    assert any(f.rule == "worker.unfit" for f in refused.value.findings), refused.value.findings


async def test_watcher_walking_away_suspends_the_permit(plant: Plant) -> None:
    """GB 30871 4.10 f: the watcher outside the work area → permit taken back, work stopped."""
    gc = plant.permits["GC-0817"]
    lat, lon = offset(*plant.area("GC-0817"), 100)
    async with Devices(plant.settings) as devices:
        await publish(plant.settings, "ww-gc-w", series("ww-gc-w", 40, lat=lat, lon=lon))
        await until(lambda: devices.got("stop_work") >= {"ww-gc-w", "ww-gc-01"}, what="stop_work")
    permit = await plant.rt.permits.get(gc.permit_id)
    assert (str(permit.state), permit.suspend_reason) == ("suspended", "watcher_away")


async def test_permit_expiry_terminates_work_and_commands_devices(plant: Plant) -> None:
    """Past its validity the scheduler expires the permit; its devices are told to stop."""
    dh = plant.permits["DH-0815"]
    async with Devices(plant.settings) as devices:
        await plant.rt.permits.tick(dh.planned_end + dt.timedelta(minutes=1))
        crew = {"ww-dh-01", "ww-dh-02", "ww-dh-03", "ww-dh-w"}
        await until(lambda: devices.got("stop_work") >= crew, what="stop_work at expiry")
    assert str((await plant.rt.permits.get(dh.permit_id)).state) == "expired"
    assert ("permit-expired-terminate",) in plant.rows(
        "SELECT rule_id FROM decisions WHERE permit_id = %s", dh.permit_id
    )


async def test_device_that_never_acks_times_out_and_control_room_is_told(plant: Plant) -> None:
    """A rest command nobody acknowledges times out; the control room gets a push."""
    async with Devices(plant.settings, silent={"ww-dh-02"}) as devices:
        lat, lon = plant.area("DH-0815")
        await publish(
            plant.settings, "ww-dh-02", series("ww-dh-02", 240, hr=166.0, lat=lat, lon=lon)
        )
        await until(lambda: "ww-dh-02" in devices.got("rest"), timeout_s=40)
        await until(
            lambda: plant.rows(
                "SELECT 1 FROM device_commands WHERE device_id = 'ww-dh-02' AND state = 'timed_out'"
            ),
            timeout_s=20,
        )

    def told() -> list[tuple[object, ...]]:
        return plant.rows(
            "SELECT p.user_id, p.role FROM pushes p JOIN push_groups g USING (group_id)"
            " WHERE g.kind = 'command_timeout'"
        )

    # the push follows the timeout in its own step: wait for it rather than race it
    await until(lambda: told(), timeout_s=10, what="control-room push")
    assert ("demo-control-room", "control_room") in told()


async def test_service_restart_mid_evacuation_keeps_state_and_tracks_commands(
    settings: Settings,
) -> None:
    """Stop the service while nobody has acknowledged; the next instance keeps the evacuation
    open, delivers the commands when the devices come back, and completes it."""
    s = settings.model_copy(
        update={
            "enforcement": FAST.model_copy(
                update={
                    "command_expiry_s": 60,
                    "command_deadline_s": 60,
                    "command_max_attempts": 50,
                }
            )
        }
    )
    async with running_plant(s) as plant:
        lat, lon = plant.area("SX-0816")
        sx = plant.permits["SX-0816"]
        await publish(s, "ww-sx-02", series("ww-sx-02", 40, spo2=84.0, lat=lat, lon=lon))
        await until(
            lambda: plant.rows("SELECT 1 FROM evacuations WHERE permit_id = %s", sx.permit_id)
        )
    rows = plant.rows("SELECT state FROM device_commands WHERE action = 'evacuate'")
    assert rows
    assert all(r[0] in ("queued", "sent") for r in rows)
    async with running_plant(s) as again, Devices(s) as devices:
        await until(lambda: devices.got("evacuate") >= {"ww-sx-01", "ww-sx-02", "ww-sx-w"})
        await until(
            lambda: (
                not again.rows(
                    "SELECT 1 FROM device_commands WHERE action = 'evacuate' AND state <> 'done'"
                )
            )
        )
        assert again.rows("SELECT state FROM evacuations WHERE permit_id = %s", sx.permit_id) == [
            ("in_progress",)
        ]
        away = offset(lat, lon, 150)
        for n, device in enumerate(("ww-sx-01", "ww-sx-02", "ww-sx-w")):
            await publish(s, device, series(device, 3, seq0=5000 + n, lat=away[0], lon=away[1]))
        await until(lambda: again.rows("SELECT 1 FROM evacuations WHERE state = 'complete'"))
    assert Actor.system().user_id == "system"
