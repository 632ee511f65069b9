"""Evacuations: every person on the permit tracked until accounted for — outside the area by
GPS, or confirmed by the watcher's head count. Acknowledgement on the device is recorded too
(the worker got the order) but does not by itself account for anyone."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ingest.errors import PermitPulseError

EARTH_RADIUS_M = 6_371_008.8


class EvacuationNotFound(PermitPulseError):
    """Raised when an evacuation id names none.

    Attributes:
        evacuation_id: the id asked for.
    """

    def __init__(self, evacuation_id: str) -> None:
        super().__init__(f"evacuation {evacuation_id} not found")
        self.evacuation_id = evacuation_id


@dataclass(frozen=True, slots=True)
class Person:
    device_id: str
    worker_id: str | None
    acked_at: dt.datetime | None
    outside_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    confirmed_by: str | None

    @property
    def accounted(self) -> bool:
        return self.outside_at is not None or self.confirmed_at is not None


@dataclass(frozen=True, slots=True)
class Evacuation:
    evacuation_id: uuid.UUID
    permit_id: uuid.UUID | None
    site_id: str
    lat: float
    lon: float
    radius_m: float
    reason: str
    state: str
    started_at: dt.datetime
    completed_at: dt.datetime | None
    people: tuple[Person, ...]

    def to_json(self) -> dict[str, Any]:
        def iso(v: dt.datetime | None) -> str | None:
            return v.isoformat() if v else None

        return {
            "evacuation_id": str(self.evacuation_id),
            "permit_id": str(self.permit_id) if self.permit_id else None,
            "site_id": self.site_id,
            "lat": self.lat,
            "lon": self.lon,
            "radius_m": self.radius_m,
            "reason": self.reason,
            "state": self.state,
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "accounted": sum(p.accounted for p in self.people),
            "people": [
                {
                    "device_id": p.device_id,
                    "worker_id": p.worker_id,
                    "acked_at": iso(p.acked_at),
                    "outside_at": iso(p.outside_at),
                    "confirmed_at": iso(p.confirmed_at),
                    "confirmed_by": p.confirmed_by,
                    "accounted": p.accounted,
                }
                for p in self.people
            ],
        }


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


class Evacuations:
    """Stores evacuations and their people."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def start(
        self,
        conn: psycopg.AsyncConnection[Any],
        *,
        permit_id: uuid.UUID | None,
        decision_id: int | None,
        site_id: str,
        lat: float,
        lon: float,
        radius_m: float,
        reason: str,
        people: Sequence[tuple[str, str | None, uuid.UUID | None]],
    ) -> tuple[uuid.UUID, bool]:
        """Open an evacuation (or join the one already open for the permit) and add people.

        Returns the evacuation id and whether it is new.
        """
        cur = await conn.execute(
            "SELECT evacuation_id FROM evacuations WHERE permit_id = %s AND state = 'in_progress'",
            (permit_id,),
        )
        row = await cur.fetchone()
        new = row is None
        evac_id = uuid.uuid4() if row is None else row[0]
        if new:
            await conn.execute(
                "INSERT INTO evacuations (evacuation_id, permit_id, decision_id, site_id, lat, lon,"
                " radius_m, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (evac_id, permit_id, decision_id, site_id, lat, lon, radius_m, reason),
            )
        for device_id, worker_id, cmd_id in people:
            await conn.execute(
                "INSERT INTO evacuation_people (evacuation_id, device_id, worker_id, cmd_id)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (evacuation_id, device_id) DO NOTHING",
                (evac_id, device_id, worker_id, cmd_id),
            )
        return evac_id, new

    async def open(self) -> list[Evacuation]:
        return await self._load("e.state = 'in_progress'", ())

    async def recent(self, limit: int = 50) -> list[Evacuation]:
        """The newest evacuations, open or complete, oldest of them first."""
        return await self._load(
            "e.evacuation_id IN (SELECT evacuation_id FROM evacuations"
            " ORDER BY started_at DESC LIMIT %s)",
            (limit,),
        )

    async def get(self, evacuation_id: uuid.UUID) -> Evacuation:
        found = await self._load("e.evacuation_id = %s", (evacuation_id,))
        if not found:
            raise EvacuationNotFound(str(evacuation_id))
        return found[0]

    async def for_permit(self, permit_id: uuid.UUID) -> list[Evacuation]:
        return await self._load("e.permit_id = %s", (permit_id,))

    async def track(self, positions: Mapping[str, tuple[float, float]]) -> list[Evacuation]:
        """Mark people outside their evacuation's area and close evacuations where everyone
        is accounted for; returns the evacuations that changed."""
        changed: list[Evacuation] = []
        for evac in await self.open():
            moved = [
                p.device_id
                for p in evac.people
                if p.outside_at is None
                and p.device_id in positions
                and distance_m(evac.lat, evac.lon, *positions[p.device_id]) > evac.radius_m
            ]
            async with self._pool.connection() as conn, conn.transaction():
                if moved:
                    await conn.execute(
                        "UPDATE evacuation_people SET outside_at = now() WHERE evacuation_id = %s"
                        " AND device_id = ANY(%s) AND outside_at IS NULL",
                        (evac.evacuation_id, moved),
                    )
                done = await self._complete_if_accounted(conn, evac.evacuation_id)
            if moved or done:
                changed.append(await self.get(evac.evacuation_id))
        return changed

    async def acked(self, cmd_id: uuid.UUID) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE evacuation_people SET acked_at = coalesce(acked_at, now())"
                " WHERE cmd_id = %s",
                (cmd_id,),
            )

    async def confirm(
        self, evacuation_id: uuid.UUID, *, devices: Sequence[str] | None, by: str
    ) -> Evacuation:
        """The watcher's head count: the named people (None: everyone) are out."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT 1 FROM evacuations WHERE evacuation_id = %s FOR UPDATE", (evacuation_id,)
            )
            if await cur.fetchone() is None:
                raise EvacuationNotFound(str(evacuation_id))
            await conn.execute(
                "UPDATE evacuation_people SET confirmed_at = now(), confirmed_by = %s"
                " WHERE evacuation_id = %s AND confirmed_at IS NULL"
                " AND (%s::text[] IS NULL OR device_id = ANY(%s))",
                (by, evacuation_id, devices, devices),
            )
            await self._complete_if_accounted(conn, evacuation_id)
        return await self.get(evacuation_id)

    async def _complete_if_accounted(
        self, conn: psycopg.AsyncConnection[Any], evacuation_id: uuid.UUID
    ) -> bool:
        cur = await conn.execute(
            "UPDATE evacuations SET state = 'complete', completed_at = now()"
            " WHERE evacuation_id = %s AND state = 'in_progress' AND NOT EXISTS ("
            " SELECT 1 FROM evacuation_people WHERE evacuation_id = %s"
            " AND outside_at IS NULL AND confirmed_at IS NULL)",
            (evacuation_id, evacuation_id),
        )
        return cur.rowcount > 0

    async def _load(self, where: str, args: tuple[Any, ...]) -> list[Evacuation]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT evacuation_id, permit_id, site_id, lat, lon, radius_m, reason, state,"
                f" started_at, completed_at FROM evacuations e WHERE {where} ORDER BY started_at",
                args,
            )
            evacs = await cur.fetchall()
            out = []
            for e in evacs:
                await cur.execute(
                    "SELECT device_id, worker_id, acked_at, outside_at, confirmed_at, confirmed_by"
                    " FROM evacuation_people WHERE evacuation_id = %s ORDER BY device_id",
                    (e["evacuation_id"],),
                )
                people = tuple(Person(**p) for p in await cur.fetchall())
                out.append(Evacuation(**e, people=people))
        return out
