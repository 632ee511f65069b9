"""Demo seeding: the scenario's site, workers, devices and permits put into the database the
way a plant would — every permit raised, documented, approved along its GB 30871 route on
site, gas-tested, checked in and activated through `PermitService` (no shortcuts), so the
rule engine has real permits to enforce while the simulator plays the story.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Sequence
from typing import Any

from PIL import Image
from psycopg_pool import AsyncConnectionPool

from firmware_sim.scenario import AreaSpec, Scenario
from permits.certificates import AuthorityRecord, RegistryVerifier
from permits.models import Actor, EvidencePhase, GeoPoint, Permit, PermitType
from permits.schemas import (
    Conditions,
    GasReadingIn,
    GasTestCreate,
    PermitCreate,
    PointIn,
    WorkerIn,
)
from permits.service import PermitService

log = logging.getLogger(__name__)

ISSUER = "上海市应急管理局"
#: Company positions of the people who run the demo's permits (one person per route step, so
#: separation of duties holds).
POSITIONS: dict[str, list[str]] = {
    "demo-applicant": ["applicant"],
    "demo-analyst": ["analyst"],
    "demo-post": ["post_leader"],
    "demo-unit": ["local_unit"],
    "demo-safety-dept": ["safety_dept"],
    "demo-leader": ["senior_leader"],
    "demo-spec": ["specialist_dept"],
    "demo-plant": ["plant_manager"],
    "demo-power": ["power_unit"],
    **{
        f"demo-cs-{k}": [f"cs_{k}"]
        for k in ("water", "power", "steam", "process", "equipment", "fire", "safety")
    },
}
SIGNER = {roles[0]: user for user, roles in POSITIONS.items()}
#: The trade certificate each type's crew needs (GB 30871 4.9); None: no special operation.
TRADE = {"DH": "welding_cutting", "GC": "height", "DZ": "lifting", "YD": "electrician"}
FIELDS: dict[str, dict[str, Any]] = {
    "DH": {
        "method": "electric_welding",
        "location_class": "fire_explosion_area",
        "daily_hours": "00:00-23:59",  # the demo runs at any hour
    },
    "SX": {"space_id": "T-203", "medium": "benzene"},
    "GC": {"height_m": 12.0},
    "MB": {"pipe_id": "P-201", "blind_number": "B-7", "action": "insert", "medium": "naphtha"},
    "DZ": {"mass_t": 20.0},
    "YD": {"supply_point": "MCC-3", "voltage_v": 380},
    "DT": {"depth_m": 1.0},
    "DL": {"road_section": "Road 3 east", "detour": "Road 5"},
}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
DEMO_WATCHER = "demo-watcher"


def certificate_number(worker_id: str) -> str:
    return f"DEMO-{worker_id.upper()}"


def demo_verifier(scenario: Scenario) -> RegistryVerifier:
    """The authority registry as the demo's crews appear in it (all valid)."""
    records = {}
    for permit in scenario.permits:
        trade = TRADE.get(permit.type)
        if trade is None:
            continue
        for worker_id in permit.workers:
            number = certificate_number(worker_id)
            records[number] = AuthorityRecord(
                number=number,
                trade=trade,
                holder_id=worker_id,
                holder_name=_name(scenario, worker_id),
                issuer=ISSUER,
                valid_until=dt.date(2030, 6, 30),
                review_due=dt.date(2028, 6, 30),
            )
    return RegistryVerifier(records)


def registry_csv(scenario: Scenario) -> str:
    """The same registry as CSV (the format `RegistryVerifier.from_csv` imports)."""
    lines = ["number,trade,holder_id,holder_name,issuer,valid_until,review_due,status"]
    for r in demo_verifier(scenario)._records.values():
        lines.append(
            f"{r.number},{r.trade},{r.holder_id},{r.holder_name},{r.issuer},"
            f"{r.valid_until},{r.review_due},valid"
        )
    return "\n".join(lines) + "\n"


async def seed(
    scenario: Scenario, *, pool: AsyncConnectionPool, permits: PermitService
) -> list[str]:
    """Register the scenario's people and devices and bring its permits to active; permits
    already live from an earlier run are kept. Returns the numbers of the permits activated."""
    site = scenario.site.id
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO sites (site_id, name, timezone) VALUES (%s, %s, 'Asia/Shanghai')"
            " ON CONFLICT (site_id) DO NOTHING",
            (site, scenario.description or site),
        )
        for w in scenario.workers:
            await conn.execute(
                "INSERT INTO workers (worker_id, site_id, name, age, acclimatized, resting_hr)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (worker_id) DO UPDATE SET"
                " age = EXCLUDED.age, acclimatized = EXCLUDED.acclimatized,"
                " resting_hr = EXCLUDED.resting_hr",
                (w.id, site, w.name or w.id, w.age, w.acclimatized, w.resting_hr),
            )
            await conn.execute(
                "INSERT INTO devices (device_id, site_id, worker_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (device_id) DO UPDATE SET worker_id = EXCLUDED.worker_id",
                (w.device, site, w.id),
            )
        for user, roles in POSITIONS.items():
            await _position(conn, user, roles, site, None)
        for i, spec in enumerate(scenario.permits):
            if spec.watcher:
                user = DEMO_WATCHER if i == 0 else spec.watcher
                await _position(conn, user, ["watcher"], site, spec.watcher)
        for spec in scenario.permits:
            trade = TRADE.get(spec.type)
            for worker_id in spec.workers if trade else []:
                await conn.execute(
                    "INSERT INTO certificates (worker_id, trade, number, issuer, valid_until,"
                    " review_due) SELECT %s, %s, %s, %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM"
                    " certificates WHERE worker_id = %s AND trade = %s)",
                    (worker_id, trade, certificate_number(worker_id), ISSUER,
                     dt.date(2030, 6, 30), dt.date(2028, 6, 30), worker_id, trade),
                )  # fmt: skip
    live = {p.title.split(" ")[0] for p in await _live_permits(permits, site)}
    activated = []
    for i, spec in enumerate(scenario.permits):
        if spec.id in live:
            continue
        watcher = DEMO_WATCHER if i == 0 else (spec.watcher or DEMO_WATCHER)
        area = scenario.area(spec.area)
        try:
            p = await _activate(permits, scenario, spec.id, spec.type, spec.workers, watcher, area)
            activated.append(p.number)
        except Exception:  # one permit the rules refuse must not stop the demo
            log.exception("demo permit %s could not be activated", spec.id)
    log.info("demo permits active: %s", ", ".join(activated) or "(already)")
    return activated


async def _position(
    conn: Any, user: str, roles: Sequence[str], site: str, worker: str | None
) -> None:
    await conn.execute(
        "INSERT INTO permit_users (user_id, name, roles, site_id, worker_id)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET roles = EXCLUDED.roles,"
        " site_id = EXCLUDED.site_id, worker_id = EXCLUDED.worker_id",
        (user, user, list(roles), site, worker),
    )


async def _live_permits(permits: PermitService, site: str) -> list[Permit]:
    from permits.repository import SearchFilter

    out: list[Permit] = []
    for state in ("approved", "active", "suspended"):
        out += await permits.search(SearchFilter(site_id=site, state=state, limit=1000))
    return out


def _actor(user: str) -> Actor:
    roles = POSITIONS.get(user, ["watcher"])
    return Actor(user_id=user, roles=frozenset(roles), name=user)


def _centre(area: AreaSpec) -> GeoPoint:
    if area.circle is not None:
        return GeoPoint(area.circle.lat, area.circle.lon)
    assert area.polygon is not None
    lats = [v[0] for v in area.polygon]
    lons = [v[1] for v in area.polygon]
    return GeoPoint(sum(lats) / len(lats), sum(lons) / len(lons))


async def _activate(
    svc: PermitService,
    scenario: Scenario,
    spec_id: str,
    ptype: str,
    workers: Sequence[str],
    watcher: str,
    area: AreaSpec,
) -> Permit:
    at = _centre(area)
    now = svc.clock().replace(microsecond=0)
    trade = TRADE.get(ptype)
    req = PermitCreate(
        site_id=scenario.site.id,
        type=PermitType(ptype),
        title=f"{spec_id} {area.name or area.id}"[:200],
        location=PointIn(lat=at.lat, lon=at.lon),
        location_text=area.name or area.id,
        planned_start=now,
        planned_end=now + dt.timedelta(hours=7),
        watcher=watcher,
        workers=[WorkerIn(worker_id=w, trade=trade) for w in workers],
        fields=dict(FIELDS[ptype]),
    )
    p = await svc.create(actor=_actor("demo-applicant"), data=req)
    await _evidence(svc, p, EvidencePhase.SUBMIT, watcher)
    p = await svc.submit(actor=_actor("demo-applicant"), permit_id=p.permit_id)
    for step in svc.route(p):
        p = await svc.approve(actor=_actor(SIGNER[step.role]), permit_id=p.permit_id, position=at)
    await _evidence(svc, p, EvidencePhase.PRE_START, watcher)
    if _needs_gas(svc, p):
        readings = [GasReadingIn(substance="methane", value=0.1, unit="%vol")]
        if ptype in ("SX", "DT"):
            readings.append(GasReadingIn(substance="h2s", value=1.0, unit="mg/m3"))
        await svc.record_gas_test(
            actor=_actor("demo-analyst"),
            permit_id=p.permit_id,
            data=GasTestCreate(taken_at=svc.clock(), point="P1", o2_pct=20.9, readings=readings),
        )
    await svc.check_in(actor=_actor(watcher), permit_id=p.permit_id, position=at, accuracy_m=5.0)
    return await svc.activate(
        actor=_actor("demo-post"),
        permit_id=p.permit_id,
        confirmed_measures=list(p.measures),
        conditions=Conditions(wind_force=2),
    )


def _needs_gas(svc: PermitService, p: Permit) -> bool:
    from permits.templates import gas_required

    return bool(gas_required(svc.template(p.type), p.fields))


async def _evidence(svc: PermitService, p: Permit, phase: EvidencePhase, uploader: str) -> None:
    seed = hash((p.number, phase.value)) & 0xFFFF
    for step in svc.template(p.type).steps_for(p.level, p.fields):
        if step.phase is not phase:
            continue
        files = [PDF] if step.kind == "document" else [_jpeg(seed), _jpeg(seed + 1)]
        seed += 2
        for content in files:
            await svc.add_evidence(
                actor=_actor(uploader), permit_id=p.permit_id, step=step.id, content=content
            )


def _jpeg(seed: int) -> bytes:
    colour = ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256)
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, "JPEG")
    return buf.getvalue()


def _name(scenario: Scenario, worker_id: str) -> str:
    return next((w.name for w in scenario.workers if w.id == worker_id), worker_id) or worker_id
