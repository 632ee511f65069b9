"""Builders for permit tests: a seeded plant (site, users, workers, certificates), permit
requests of each type, images, and a driver that takes a permit up to activation."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from PIL import Image

from permits import geo, routes
from permits.certificates import AuthorityRecord, CertificateClaim, RegistryVerifier
from permits.config import PermitSettings
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

SITE = "plant-1"
#: The work point (Shanghai Chemical Industry Park, roughly).
ORIGIN = GeoPoint(30.8189, 121.4869)
#: Tuesday 2026-12-01 10:00 in Shanghai: a working day, daytime.
T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)

#: user id → roles
USERS: dict[str, list[str]] = {
    "app": ["applicant"],
    "app2": ["applicant"],
    "wat": ["watcher"],
    "wat2": ["watcher"],
    "ana": ["analyst"],
    "post": ["post_leader"],
    "unit": ["local_unit"],
    "unit2": ["local_unit"],
    "safety": ["safety_dept"],
    "lead": ["senior_leader"],
    "spec": ["specialist_dept"],
    "plant": ["plant_manager"],
    "power": ["power_unit"],
    "multi": ["local_unit", "safety_dept", "senior_leader"],
    "cs-water": ["cs_water"],
    "cs-power": ["cs_power"],
    "cs-steam": ["cs_steam"],
    "cs-process": ["cs_process"],
    "cs-equipment": ["cs_equipment"],
    "cs-fire": ["cs_fire"],
    "cs-safety": ["cs_safety"],
    "admin": ["admin"],
}
#: role → the user who signs it in the happy path
SIGNER = {
    "local_unit": "unit",
    "safety_dept": "safety",
    "senior_leader": "lead",
    "specialist_dept": "spec",
    "plant_manager": "plant",
    "power_unit": "power",
    **{
        f"cs_{k}": f"cs-{k}"
        for k in ("water", "power", "steam", "process", "equipment", "fire", "safety")
    },
}
#: worker id → (crew, trade certificate or None)
WORKERS: dict[str, tuple[str, str | None]] = {
    "w1": ("crew-a", "welding_cutting"),
    "w2": ("crew-a", "height"),
    "w3": ("crew-b", "electrician"),
    "w4": ("crew-b", "lifting"),
    "w5": ("crew-b", None),
}
ISSUER = "上海市应急管理局"


def cert_number(worker: str) -> str:
    return f"T{worker.upper()}-0001"


def seed_sql(url: str) -> None:
    """Insert the site, workers, users and the workers' certificates on file."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO sites (site_id, name, timezone) VALUES (%s, %s, 'Asia/Shanghai')",
            (SITE, "Plant 1"),
        )
        for w, (crew, trade) in WORKERS.items():
            conn.execute(
                "INSERT INTO workers (worker_id, site_id, name, crew) VALUES (%s, %s, %s, %s)",
                (w, SITE, f"Worker {w}", crew),
            )
            if trade:
                conn.execute(
                    "INSERT INTO certificates (worker_id, trade, number, issuer, valid_until,"
                    " review_due) VALUES (%s, %s, %s, %s, %s, %s)",
                    (w, trade, cert_number(w), ISSUER, dt.date(2029, 6, 30), dt.date(2027, 6, 30)),
                )
        for user, roles in USERS.items():
            conn.execute(
                "INSERT INTO permit_users (user_id, name, roles, site_id) VALUES (%s, %s, %s, %s)",
                (user, user.title(), roles, SITE),
            )


def registry_records() -> dict[str, AuthorityRecord]:
    """The authority's view of the seeded certificates (all valid)."""
    return {
        cert_number(w): AuthorityRecord(
            number=cert_number(w),
            trade=trade,
            holder_id=w,
            holder_name=f"Worker {w}",
            issuer=ISSUER,
            valid_until=dt.date(2029, 6, 30),
            review_due=dt.date(2027, 6, 30),
        )
        for w, (_, trade) in WORKERS.items()
        if trade
    }


def registry_csv_text() -> str:
    lines = ["number,trade,holder_id,holder_name,issuer,valid_until,review_due,status"]
    for r in registry_records().values():
        lines.append(
            f"{r.number},{r.trade},{r.holder_id},{r.holder_name},{r.issuer},"
            f"{r.valid_until},{r.review_due},valid"
        )
    return "\n".join(lines) + "\n"


class Clock:
    """A settable UTC clock."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def actor(user: str) -> Actor:
    return Actor(user_id=user, roles=frozenset(USERS[user]), name=user)


FIELDS: dict[PermitType, dict[str, Any]] = {
    PermitType.DH: {"method": "electric_welding", "location_class": "fire_explosion_area"},
    PermitType.SX: {"space_id": "V-101", "medium": "benzene"},
    PermitType.MB: {
        "pipe_id": "P-201",
        "blind_number": "B-7",
        "action": "insert",
        "medium": "naphtha",
    },
    PermitType.GC: {"height_m": 6.0},
    PermitType.DZ: {"mass_t": 20.0},
    PermitType.YD: {"supply_point": "MCC-3", "voltage_v": 380},
    PermitType.DT: {"depth_m": 1.0},
    PermitType.DL: {"road_section": "Road 3 east", "detour": "Road 5"},
}
CREW: dict[PermitType, list[tuple[str, str | None]]] = {
    PermitType.DH: [("w1", "welding_cutting"), ("w5", None)],
    PermitType.SX: [("w5", None)],
    PermitType.MB: [("w5", None)],
    PermitType.GC: [("w2", "height")],
    PermitType.DZ: [("w4", "lifting")],
    PermitType.YD: [("w3", "electrician")],
    PermitType.DT: [("w5", None)],
    PermitType.DL: [("w5", None)],
}


def permit_create(
    ptype: PermitType,
    *,
    start: dt.datetime = T0,
    hours: float = 4.0,
    at: GeoPoint = ORIGIN,
    fields: dict[str, Any] | None = None,
    watcher: str = "wat",
    host: uuid.UUID | None = None,
    activities: Sequence[str] = (),
    coordinator: str | None = None,
    crew: Sequence[tuple[str, str | None]] | None = None,
) -> PermitCreate:
    return PermitCreate(
        site_id=SITE,
        type=ptype,
        title=f"{ptype} job",
        location=PointIn(lat=at.lat, lon=at.lon),
        location_text="Unit 3, east pipe rack",
        planned_start=start,
        planned_end=start + dt.timedelta(hours=hours),
        watcher=watcher,
        workers=[WorkerIn(worker_id=w, trade=t) for w, t in (crew or CREW[ptype])],
        fields={**FIELDS[ptype], **(fields or {})},
        activities=list(activities),
        host_permit_id=host,
        coordinator=coordinator,
    )


def jpeg(seed: int, *, gps: GeoPoint | None = None, taken: str | None = None) -> bytes:
    """A small distinct JPEG, optionally with EXIF GPS and DateTimeOriginal."""
    img = Image.new("RGB", (16, 16), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    exif = Image.Exif()
    if gps is not None:

        def dms(x: float) -> tuple[float, float, float]:
            x = abs(x)
            d = int(x)
            m = int((x - d) * 60)
            return (float(d), float(m), round((x - d - m / 60) * 3600, 4))

        exif[0x8825] = {
            1: "N" if gps.lat >= 0 else "S",
            2: dms(gps.lat),
            3: "E" if gps.lon >= 0 else "W",
            4: dms(gps.lon),
        }
    if taken is not None:
        exif[0x8769] = {36867: taken}
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def passing_gas(ptype: PermitType, taken: dt.datetime) -> GasTestCreate:
    readings = [GasReadingIn(substance="methane", value=0.1, unit="%vol")]
    if ptype in (PermitType.SX, PermitType.DT):
        readings.append(GasReadingIn(substance="h2s", value=1.0, unit="mg/m3"))
    return GasTestCreate(taken_at=taken, point="P1", o2_pct=20.9, readings=readings)


CALM = Conditions(wind_force=2)


async def sign_route(svc: PermitService, p: Permit, *, at: GeoPoint | None = None) -> Permit:
    for step in svc.route(p):
        p = await svc.approve(
            actor=actor(SIGNER[step.role]), permit_id=p.permit_id, position=at or p.location
        )
    return p


async def upload(svc: PermitService, p: Permit, phase: EvidencePhase, seed: int = 0) -> None:
    tpl = svc.template(p.type)
    n = seed
    for step in tpl.steps_for(p.level, p.fields):
        if step.phase is not phase:
            continue
        files = [PDF] if step.kind == "document" else [jpeg(n + 1), jpeg(n + 2)]
        n += 2
        for content in files:
            await svc.add_evidence(
                actor=actor("wat"), permit_id=p.permit_id, step=step.id, content=content
            )


async def approved(svc: PermitService, req: PermitCreate) -> Permit:
    """Create, attach documents, submit and sign the whole route."""
    p = await svc.create(actor=actor("app"), data=req)
    await upload(svc, p, EvidencePhase.SUBMIT)
    p = await svc.submit(actor=actor("app"), permit_id=p.permit_id)
    return await sign_route(svc, p)


async def ready(svc: PermitService, req: PermitCreate, *, seed: int = 100) -> Permit:
    """An approved permit with its photos, a passing gas test and the watcher checked in."""
    p = await approved(svc, req)
    await upload(svc, p, EvidencePhase.PRE_START, seed)
    from permits.templates import gas_required

    if gas_required(svc.template(p.type), p.fields):
        await svc.record_gas_test(
            actor=actor("ana"), permit_id=p.permit_id, data=passing_gas(p.type, svc.clock())
        )
    await svc.check_in(
        actor=actor(p.watcher), permit_id=p.permit_id, position=p.location, accuracy_m=5.0
    )
    return p


async def activate(svc: PermitService, p: Permit, *, by: str = "post") -> Permit:
    return await svc.activate(
        actor=actor(by),
        permit_id=p.permit_id,
        confirmed_measures=list(p.measures),
        conditions=CALM,
    )


def settings(**overrides: Any) -> PermitSettings:
    return PermitSettings(scheduler_enabled=False, **overrides)


def verifier() -> RegistryVerifier:
    return RegistryVerifier(registry_records())


def claim(worker: str, **changes: Any) -> CertificateClaim:
    trade = WORKERS[worker][1]
    assert trade
    base: dict[str, Any] = {
        "worker_id": worker,
        "trade": trade,
        "number": cert_number(worker),
        "issuer": ISSUER,
        "valid_until": dt.date(2029, 6, 30),
        "review_due": dt.date(2027, 6, 30),
    }
    return CertificateClaim(**{**base, **changes})


def point_at(metres: float, bearing: float = 90.0) -> GeoPoint:
    return geo.offset(ORIGIN, metres=metres, bearing_deg=bearing)


def signer_for(step: routes.Step) -> str:
    return SIGNER[step.role]
