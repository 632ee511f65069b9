"""Demo-like data for the page tests: the demo scenario's site, workers, devices and permits
written into a test database (SQL, as the permit workflow would leave them: active), users
who log in through the page, and a small live fleet publishing through the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import psycopg

from api.auth import AuthSettings
from api.auth.passwords import Passwords
from firmware_sim import Scenario, load_scenario
from firmware_sim.scenario import AreaSpec
from ingest.mqtt import client
from ingest.topics import device_topic
from ingest.wire import FLAG_SOS, Sample, encode_binary

#: Names as the plant's roster has them (the scenario file uses pinyin).
HANZI = {
    "Zhang Wei": "张伟", "Li Qiang": "李强", "Wang Fang": "王芳", "Zhao Min": "赵敏",
    "Chen Jie": "陈杰", "Liu Yang": "刘洋", "Sun Li": "孙丽", "Zhou Hao": "周浩",
    "Wu Lei": "吴磊", "Xu Ming": "徐明", "Ma Jun": "马军",
}  # fmt: skip
TITLES = {
    "DH": "反应器 R-101 出口法兰动火",
    "SX": "储罐 T-203 内部检查",
    "GC": "管廊 PR-3 高处作业（12 米）",
}
PASSWORD = "correct-horse-battery-staple"
M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Area:
    lat: float
    lon: float
    radius_m: float


@dataclass
class DemoSite:
    """What was seeded: ids the tests refer to."""

    site_id: str
    permits: dict[str, uuid.UUID]  # scenario permit id (e.g. SX-0816) → permit_id
    devices: dict[str, str]  # device → worker
    areas: dict[str, Area]  # device → the area it works in
    users: dict[str, str] = field(default_factory=dict)  # role → username


def area_of(spec: AreaSpec) -> Area:
    """Centre and radius of a scenario area (a polygon becomes its enclosing circle)."""
    if spec.circle is not None:
        return Area(spec.circle.lat, spec.circle.lon, spec.circle.radius_m)
    assert spec.polygon is not None
    lat = sum(p[0] for p in spec.polygon) / len(spec.polygon)
    lon = sum(p[1] for p in spec.polygon) / len(spec.polygon)
    k = M_PER_DEG * math.cos(math.radians(lat))
    r = max(math.hypot((p[0] - lat) * M_PER_DEG, (p[1] - lon) * k) for p in spec.polygon)
    return Area(lat, lon, round(r, 1))


def seed(url: str, auth: AuthSettings, *, scenario: Scenario | None = None) -> DemoSite:
    """Write the scenario's site, workers, devices and active permits, and one login per role
    the tests use (control room, supervisor of the site)."""
    sc = scenario or load_scenario("demo.yaml")
    site = sc.site.id
    now = dt.datetime.now(dt.UTC)
    areas = {a.id: area_of(a) for a in sc.site.areas}
    permit_of = {w: p for p in sc.permits for w in [*p.workers, p.watcher] if w}
    worker_area: dict[str, Area] = {}
    out = DemoSite(site_id=site, permits={}, devices={}, areas={})
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO sites (site_id, name, timezone) VALUES (%s, %s, 'Asia/Shanghai')",
            (site, "上海化学工业区 演示装置"),
        )
        for w in sc.workers:
            conn.execute(
                "INSERT INTO workers (worker_id, site_id, name, crew, age, acclimatized,"
                " resting_hr) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (w.id, site, HANZI.get(w.name, w.name), None, w.age, w.acclimatized, w.resting_hr),
            )
            conn.execute(
                "INSERT INTO devices (device_id, site_id, worker_id) VALUES (%s, %s, %s)",
                (w.device, site, w.id),
            )
            out.devices[w.device] = w.id
            permit = permit_of.get(w.id)
            if permit is not None:
                worker_area[w.device] = areas[permit.area]
        conn.execute(
            "INSERT INTO permit_users (user_id, name, roles, site_id) VALUES (%s, %s, %s, %s)",
            ("huang.gong", "黄工", ["applicant"], site),
        )
        for p in sc.permits:
            assert p.watcher is not None
            watcher = next(w for w in sc.workers if w.id == p.watcher)
            conn.execute(
                "INSERT INTO permit_users (user_id, name, roles, site_id, worker_id)"
                " VALUES (%s, %s, %s, %s, %s)",
                (p.watcher, HANZI.get(watcher.name, watcher.name), ["watcher"], site, p.watcher),
            )
            out.permits[p.id] = _permit(
                conn, site, p.id, p.type, p.level, p.watcher, areas[p.area], now
            )
            for w_id in p.workers:
                conn.execute(
                    "INSERT INTO permit_workers (permit_id, worker_id) VALUES (%s, %s)",
                    (out.permits[p.id], w_id),
                )
            _activate(conn, out.permits[p.id], now)
        passwords = Passwords(auth)
        for role, username in (("control_room", "cr.wang"), ("supervisor", "sup.li")):
            conn.execute(
                "INSERT INTO users (username, display_name, password_hash, roles, all_sites)"
                " VALUES (%s, %s, %s, %s, false)",
                (username, username, passwords.hash(PASSWORD), [role]),
            )
            conn.execute("INSERT INTO user_sites VALUES (%s, %s)", (username, site))
            out.users[role] = username
    origin = Area(sc.site.origin.lat, sc.site.origin.lon, sc.site.roam_radius_m)
    out.areas = {d: worker_area.get(d, origin) for d in out.devices}
    return out


def _permit(
    conn: psycopg.Connection,
    site: str,
    number: str,
    ptype: str,
    level: str | None,
    watcher: str,
    area: Area,
    now: dt.datetime,
) -> uuid.UUID:
    permit_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO permits (permit_id, number, site_id, type, level, template_version, title,"
        " applicant, watcher, lat, lon, location_text, fields, risks, measures, planned_start,"
        " planned_end, created_at) VALUES (%s, %s, %s, %s, %s, 'GB30871-2022', %s, 'huang.gong',"
        " %s, %s, %s, %s, %s, '{}', '{}', %s, %s, %s)",
        (
            permit_id,
            number,
            site,
            ptype,
            level,
            TITLES.get(ptype, number),
            watcher,
            area.lat,
            area.lon,
            TITLES.get(ptype, number),
            psycopg.types.json.Jsonb({"work_area_radius_m": area.radius_m}),
            now - dt.timedelta(hours=1),
            now + dt.timedelta(hours=3, minutes={"DH": 5, "SX": 40, "GC": 20}.get(ptype, 0)),
            now - dt.timedelta(hours=2),
        ),
    )
    return permit_id


def _activate(conn: psycopg.Connection, permit_id: uuid.UUID, now: dt.datetime) -> None:
    for state, column, ago in (
        ("submitted", "submitted_at", 110),
        ("approved", "approved_at", 80),
        ("active", "activated_at", 55),
    ):
        conn.execute(
            f"UPDATE permits SET state = %s, {column} = %s WHERE permit_id = %s",
            (state, now - dt.timedelta(minutes=ago), permit_id),
        )


class Fleet:
    """The seeded wearables at 1 Hz: each walks a small loop in its work area (operators
    across the site) with calm vitals until an incident is injected."""

    def __init__(self, *, mqtt_url: str, topic_root: str, site: DemoSite) -> None:
        self._url = mqtt_url
        self._root = topic_root
        self._site = site
        self._seq = dict.fromkeys(site.devices, 0)
        self.spo2: dict[str, float] = {}  # device → SpO2 forced (an O2-deficient atmosphere)
        self.sos: set[str] = set()
        self.sent = 0

    def sample(self, device: str, i: int, ts_ms: int) -> Sample:
        area = self._site.areas[device]
        phase = (zlib.crc32(device.encode()) % 360) * math.pi / 180
        loop = min(area.radius_m * 0.6, 40.0)
        angle = phase + ts_ms / 60_000 * 2 * math.pi  # one loop a minute
        k = M_PER_DEG * math.cos(math.radians(area.lat))
        self._seq[device] += 1
        return Sample(
            device_id=device,
            seq=self._seq[device],
            ts_ms=ts_ms,
            hr=88.0 + 6 * math.sin(ts_ms / 9_000 + phase),
            skin_temp=34.6 + 0.2 * math.sin(ts_ms / 30_000 + phase),
            spo2=self.spo2.get(device, 97.5),
            lat=area.lat + loop * math.sin(angle) / M_PER_DEG,
            lon=area.lon + loop * math.cos(angle) / k,
            gps_acc=4.0,
            motion=0.45 + 0.1 * math.sin(ts_ms / 5_000 + phase),
            battery=86.0 - (zlib.crc32(device.encode()) % 30),
            flags=FLAG_SOS if device in self.sos else 0,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Fleet]:
        async with client(self._url, identifier=f"fleet-{uuid.uuid4().hex[:8]}") as mqtt:
            task = asyncio.create_task(self._run(mqtt), name="test-fleet")
            try:
                yield self
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self, mqtt: object) -> None:
        i = 0
        while True:
            ts = (dt.datetime.now(dt.UTC).timestamp() * 1000) // 1
            for device in self._site.devices:
                frame = encode_binary([self.sample(device, i, int(ts))])
                topic = device_topic(self._root, self._site.site_id, device, "telemetry")
                await mqtt.publish(topic, frame, qos=1)  # type: ignore[attr-defined]
                self.sent += 1
            i += 1
            await asyncio.sleep(1.0)
