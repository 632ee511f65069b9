"""What the live rule engine knows of the world, read from the database: which devices are on
which permits (crew and watcher), who wears each device, who is unfit, and who holds a role."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from permits.enforcement.engine import PermitFacts

#: Permits the engine watches: the work may be going on, or may start any moment.
LIVE_STATES = ("approved", "active", "suspended")


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """A device, its site and the worker who wears it."""

    device_id: str
    site_id: str
    worker_id: str | None
    age: int | None
    acclimatized: bool
    resting_hr: float | None


@dataclass(slots=True)
class Snapshot:
    """One consistent read of the facts; replaced whole on refresh."""

    permits: dict[str, PermitFacts] = field(default_factory=dict)
    permit_sites: dict[str, str] = field(default_factory=dict)
    by_device: dict[str, list[PermitFacts]] = field(default_factory=dict)
    devices: dict[str, DeviceFacts] = field(default_factory=dict)
    unfit: dict[str, str] = field(default_factory=dict)


class LiveContext:
    """The engine's `Context`, refreshed from the database on permit events and periodically."""

    def __init__(self, pool: AsyncConnectionPool, *, work_area_radius_m: float) -> None:
        self._pool = pool
        self._radius = work_area_radius_m
        self.snap = Snapshot()

    async def refresh(self, *, devices: bool = True) -> Snapshot:
        """Read permits and fitness again, and the devices too unless ``devices`` is False
        (then the previous read of the devices is kept)."""
        snap = Snapshot()
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(_PERMITS, (list(LIVE_STATES),))
            for row in await cur.fetchall():
                facts = self._permit(row)
                snap.permits[facts.permit_id] = facts
                snap.permit_sites[facts.permit_id] = row["site_id"]
                for device in facts.all_devices:
                    snap.by_device.setdefault(device, []).append(facts)
            if devices:
                await cur.execute(_DEVICES)
                for row in await cur.fetchall():
                    snap.devices[row["device_id"]] = DeviceFacts(**row)
            else:
                snap.devices = self.snap.devices
            await cur.execute("SELECT worker_id, reason FROM worker_fitness WHERE NOT fit")
            snap.unfit = {r["worker_id"]: r["reason"] for r in await cur.fetchall()}
        self.snap = snap
        return snap

    def _permit(self, row: dict[str, Any]) -> PermitFacts:
        fields = row["fields"] or {}
        radius = fields.get("work_area_radius_m") if isinstance(fields, dict) else None
        return PermitFacts(
            permit_id=str(row["permit_id"]),
            type=row["type"],
            level=row["level"] or "",
            state=row["state"],
            devices=tuple(row["devices"] or ()),
            watcher_device=row["watcher_device"],
            lat=row["lat"],
            lon=row["lon"],
            radius_m=float(radius) if isinstance(radius, int | float) else self._radius,
        )

    # -- the engine's Context protocol ----------------------------------------------------

    def permits_of(self, device_id: str) -> Sequence[PermitFacts]:
        return self.snap.by_device.get(device_id, [])

    def worker_fit(self, worker_id: str | None) -> bool | None:
        if worker_id is None:
            return None
        return worker_id not in self.snap.unfit

    # -- lookups for the executor ----------------------------------------------------------

    def site_of_device(self, device_id: str) -> str | None:
        facts = self.snap.devices.get(device_id)
        return facts.site_id if facts else None

    def site_of_permit(self, permit_id: str) -> str | None:
        return self.snap.permit_sites.get(permit_id)

    def worker_of(self, device_id: str) -> str | None:
        facts = self.snap.devices.get(device_id)
        return facts.worker_id if facts else None

    def devices_of_worker(self, worker_id: str) -> list[str]:
        return [d.device_id for d in self.snap.devices.values() if d.worker_id == worker_id]


class SqlRecipients:
    """Who holds a role: a permit's watcher is the permit's own; the others are the users of
    the site (or of every site) holding that login role."""

    async def users_for(
        self,
        conn: psycopg.AsyncConnection[Any],
        *,
        role: str,
        site_id: str,
        permit_id: uuid.UUID | None,
    ) -> list[str]:
        if role == "watcher":
            if permit_id is None:
                return []
            cur = await conn.execute(
                "SELECT watcher FROM permits WHERE permit_id = %s", (permit_id,)
            )
            row = await cur.fetchone()
            return [str(row[0])] if row else []
        cur = await conn.execute(
            "SELECT u.username FROM users u WHERE NOT u.disabled AND %s = ANY(u.roles)"
            " AND (u.all_sites OR EXISTS (SELECT 1 FROM user_sites s"
            " WHERE s.username = u.username AND s.site_id = %s)) ORDER BY u.username",
            (role, site_id),
        )
        return [str(r[0]) for r in await cur.fetchall()]


_PERMITS = """
SELECT p.permit_id, p.site_id, p.type, p.level, p.state, p.lat, p.lon, p.fields,
       ARRAY(SELECT d.device_id FROM permit_workers pw JOIN devices d ON d.worker_id = pw.worker_id
              WHERE pw.permit_id = p.permit_id ORDER BY d.device_id) AS devices,
       (SELECT d.device_id FROM permit_users u JOIN devices d ON d.worker_id = u.worker_id
         WHERE u.user_id = p.watcher ORDER BY d.device_id LIMIT 1) AS watcher_device
  FROM permits p
 WHERE p.state = ANY(%s)
 ORDER BY p.permit_id
"""
_DEVICES = """
SELECT d.device_id, d.site_id, d.worker_id, w.age, coalesce(w.acclimatized, false) AS acclimatized,
       w.resting_hr
  FROM devices d LEFT JOIN workers w ON w.worker_id = d.worker_id
"""
