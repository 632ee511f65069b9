"""Alarms as people work them: every detector alarm change stored, acknowledged and resolved
by the control room, each step an event (SPEC §4 alarm lifecycle)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ingest.errors import PermitPulseError
from permits.enforcement.engine import AlarmFacts

_RANK = {"notice": 1, "warning": 2, "critical": 3}


class AlarmNotFound(PermitPulseError):
    """Raised when an alarm id names no alarm.

    Attributes:
        alarm_id: the id asked for.
    """

    def __init__(self, alarm_id: int) -> None:
        super().__init__(f"alarm {alarm_id} not found")
        self.alarm_id = alarm_id


class ResolutionRequired(PermitPulseError):
    """Raised when an alarm is resolved without saying why."""


@dataclass(frozen=True, slots=True)
class AlarmRow:
    """An alarm as stored."""

    alarm_id: int
    subject: str
    device_id: str
    worker_id: str | None
    kind: str
    severity: str
    peak: str
    state: str
    value: float | None
    raised_at: dt.datetime
    updated_at: dt.datetime
    cleared_at: dt.datetime | None
    acked_at: dt.datetime | None
    acked_by: str | None
    resolved_at: dt.datetime | None
    resolved_by: str | None
    resolution: str | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.__slots__:
            v = getattr(self, key)
            out[key] = v.isoformat() if isinstance(v, dt.datetime) else v
        return out


def subject_of(device_id: str, worker_id: str | None) -> str:
    """Whose alarm it is: the worker, or the device when nobody wears it (as the detectors)."""
    return f"worker:{worker_id}" if worker_id is not None else f"device:{device_id}"


class AlarmStore:
    """Stores detector alarm changes and people's acknowledgements and resolutions."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def record(self, events: Sequence[AlarmFacts]) -> list[AlarmRow]:
        """Apply detector alarm changes in order; returns the alarms they touched."""
        touched: list[AlarmRow] = []
        async with self._pool.connection() as conn, conn.transaction():
            for event in events:
                row = await self._apply(conn, event)
                if row is not None:
                    touched.append(row)
        return touched

    async def _apply(self, conn: psycopg.AsyncConnection[Any], e: AlarmFacts) -> AlarmRow | None:
        at = dt.datetime.fromtimestamp(e.ts_ms / 1000, tz=dt.UTC)
        subject = subject_of(e.device_id, e.worker_id)
        severity = e.severity if e.severity in _RANK else "warning"
        value = e.value if e.value is not None and e.value == e.value else None
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_COLS} FROM alarms WHERE subject = %s AND kind = %s AND state = 'active'"
                " FOR UPDATE",
                (subject, e.kind),
            )
            open_ = await cur.fetchone()
            if e.state == "cleared":
                if open_ is None:
                    return None
                await cur.execute(
                    f"UPDATE alarms SET state = 'cleared', cleared_at = %s, updated_at = %s"
                    f" WHERE alarm_id = %s RETURNING {_COLS}",
                    (at, at, open_["alarm_id"]),
                )
                event = "cleared"
            elif open_ is None:
                await cur.execute(
                    f"{_INSERT} RETURNING {_COLS}",
                    (subject, e.device_id, e.worker_id, e.kind, severity, severity, value, at, at),
                )
                event = "raised"
            else:
                peak = max(open_["peak"], severity, key=_RANK.__getitem__)
                await cur.execute(
                    "UPDATE alarms SET severity = %s, peak = %s, value = %s, updated_at = %s"
                    f" WHERE alarm_id = %s RETURNING {_COLS}",
                    (severity, peak, value, at, open_["alarm_id"]),
                )
                event = "escalated"
            row = await cur.fetchone()
            assert row is not None
            await cur.execute(
                "INSERT INTO alarm_events (alarm_id, at, event, severity, value)"
                " VALUES (%s, %s, %s, %s, %s)",
                (row["alarm_id"], at, event, severity, value),
            )
        return AlarmRow(**row)

    async def acknowledge(self, alarm_id: int, *, user: str) -> AlarmRow:
        """Someone has seen the alarm and takes it on (idempotent)."""
        return await self._person(
            alarm_id,
            "UPDATE alarms SET acked_at = coalesce(acked_at, now()),"
            " acked_by = coalesce(acked_by, %s) WHERE alarm_id = %s",
            (user, alarm_id),
            event="acknowledged",
            user=user,
            note=None,
        )

    async def resolve(self, alarm_id: int, *, user: str, reason: str) -> AlarmRow:
        """Close the case with the reason (acknowledging it too)."""
        if not reason.strip():
            raise ResolutionRequired("resolving an alarm needs a reason")
        return await self._person(
            alarm_id,
            "UPDATE alarms SET resolved_at = now(), resolved_by = %s, resolution = %s,"
            " acked_at = coalesce(acked_at, now()), acked_by = coalesce(acked_by, %s)"
            " WHERE alarm_id = %s",
            (user, reason.strip(), user, alarm_id),
            event="resolved",
            user=user,
            note=reason.strip(),
        )

    async def _person(
        self,
        alarm_id: int,
        sql: str,
        args: tuple[Any, ...],
        *,
        event: str,
        user: str,
        note: str | None,
    ) -> AlarmRow:
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(f"{sql} RETURNING {_COLS}", args)
            row = await cur.fetchone()
            if row is None:
                raise AlarmNotFound(alarm_id)
            await cur.execute(
                "INSERT INTO alarm_events (alarm_id, at, event, by_user, note)"
                " VALUES (%s, now(), %s, %s, %s)",
                (alarm_id, event, user, note),
            )
        return AlarmRow(**row)

    async def recent(
        self, *, active_only: bool = False, limit: int = 200, sites: Sequence[str] | None = None
    ) -> list[AlarmRow]:
        """Newest first; ``sites``: only alarms of devices of those sites (None: every site)."""
        state = "AND state = 'active'" if active_only else ""
        only = None if sites is None else list(sites)
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {_COLS} FROM alarms WHERE (%s::text[] IS NULL OR device_id IN"
                f" (SELECT device_id FROM devices WHERE site_id = ANY(%s))) {state}"
                " ORDER BY raised_at DESC LIMIT %s",
                (only, only, limit),
            )
            return [AlarmRow(**r) for r in await cur.fetchall()]

    async def events(self, alarm_id: int) -> list[tuple[str, str | None]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT event, by_user FROM alarm_events WHERE alarm_id = %s ORDER BY event_id",
                (alarm_id,),
            )
            return [(r[0], r[1]) for r in await cur.fetchall()]


_COLS = (
    "alarm_id, subject, device_id, worker_id, kind, severity, peak, state, value, raised_at,"
    " updated_at, cleared_at, acked_at, acked_by, resolved_at, resolved_by, resolution"
)
_INSERT = (
    "INSERT INTO alarms (subject, device_id, worker_id, kind, severity, peak, value, raised_at,"
    " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
