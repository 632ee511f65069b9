"""Carries out the rule engine's decisions: each one stored with its facts, then its actions —
device commands, fitness, evacuations, permit transitions and pushes — one by one, so one
action that cannot be done (a permit already suspended) never stops the others."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from ingest.commands import CommandAction
from ingest.errors import PermitPulseError
from permits.enforcement.commands import CommandService
from permits.enforcement.context import LiveContext
from permits.enforcement.engine import Decision, PermitFacts, targets
from permits.enforcement.evacuation import Evacuations, distance_m
from permits.enforcement.pushes import PushService
from permits.enforcement.rules import (
    Action,
    Command,
    Downgrade,
    Evacuate,
    Notify,
    Suspend,
    Terminate,
)
from permits.models import Actor, SuspendReason
from permits.service import PermitService

log = logging.getLogger(__name__)

Positions = Callable[[], Mapping[str, tuple[float, float]]]


class EventSink(Protocol):
    """Where carried-out actions are announced (the control room's live hub)."""

    def publish_event(self, event: dict[str, Any]) -> int: ...


_ENDABLE = ("approved", "active", "suspended")


def suspend_kind(decision: Decision) -> SuspendReason:
    """The permit domain's reason kind for a rule's suspension."""
    kind = str(decision.facts.get("alarm", {}).get("kind", "")) if decision.facts else ""
    if kind == "watcher_away":
        return SuspendReason("watcher_away")
    if kind == "gas_alarm":
        return SuspendReason("gas_alarm")
    return SuspendReason("danger")


class Executor:
    """Executes decisions against the live services."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        ctx: LiveContext,
        commands: CommandService,
        pushes: PushService,
        permits: PermitService,
        evacuations: Evacuations,
        live: EventSink,
        positions: Positions,
    ) -> None:
        self._pool = pool
        self._ctx = ctx
        self._commands = commands
        self._pushes = pushes
        self._permits = permits
        self._evacuations = evacuations
        self._live = live
        self._positions = positions

    async def execute(self, decision: Decision, *, permit: PermitFacts | None = None) -> int:
        """Store the decision, then carry out each action; returns the decision id."""
        decision_id = await self._store(decision)
        if permit is None and decision.permit_id:
            permit = self._ctx.snap.permits.get(decision.permit_id)
        for action in decision.actions:
            try:
                await self._one(action, decision, decision_id, permit)
            except (PermitPulseError, psycopg.Error) as exc:
                log.warning(
                    "action %s of rule %s not carried out: %s", action.action, decision.rule_id, exc
                )
            self._live.publish_event(
                {
                    **decision.action_lines()[decision.actions.index(action)],
                    "decision_id": decision_id,
                    "rule_id": decision.rule_id,
                    "site_id": self._site(decision),
                }
            )
        return decision_id

    async def _store(self, d: Decision) -> int:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO decisions (ts, rule_id, reason, permit_id, worker_id, device_ids,"
                " actions, facts) VALUES (to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING decision_id",
                (
                    d.ts_ms,
                    d.rule_id,
                    d.reason,
                    d.permit_id,
                    d.worker_id,
                    list(d.device_ids),
                    orjson.dumps([a.model_dump() for a in d.actions]).decode(),
                    orjson.dumps(d.facts, default=str).decode(),
                ),
            )
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def _one(
        self, action: Action, d: Decision, decision_id: int, permit: PermitFacts | None
    ) -> None:
        if isinstance(action, Downgrade):
            await self._downgrade(action, d, decision_id)
        elif isinstance(action, Evacuate):
            await self._evacuate(action, d, decision_id, permit)
        elif isinstance(action, Suspend) and permit is not None:
            if permit.state == "active":
                await self._permits.suspend(
                    actor=Actor.system(),
                    permit_id=uuid.UUID(permit.permit_id),
                    reason_kind=suspend_kind(d),
                    reason=action.reason,
                )
        elif isinstance(action, Terminate) and permit is not None:
            if permit.state in _ENDABLE:
                await self._permits.terminate(
                    actor=Actor.system(),
                    permit_id=uuid.UUID(permit.permit_id),
                    reason=action.reason,
                )
        elif isinstance(action, Command):
            params = {"text": action.message} if action.message else {}
            for device in targets(action, d):
                await self._commands.issue(
                    device_id=device, action=action.command, params=params, decision_id=decision_id
                )
        elif isinstance(action, Notify):
            await self._notify(action, d, decision_id)

    async def _downgrade(self, action: Downgrade, d: Decision, decision_id: int) -> None:
        device = targets(action, d)[0] if targets(action, d) else None
        worker = d.worker_id or (self._ctx.worker_of(device) if device else None)
        if worker is not None:
            async with self._pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO worker_fitness (worker_id, fit, reason, since, decision_id,"
                    " recover_min) VALUES (%s, false, %s, now(), %s, %s)"
                    " ON CONFLICT (worker_id) DO UPDATE SET fit = false, reason = EXCLUDED.reason,"
                    " since = now(), decision_id = EXCLUDED.decision_id,"
                    " recover_min = EXCLUDED.recover_min",
                    (worker, d.reason, decision_id, action.return_after_min),
                )
            self._ctx.snap.unfit[worker] = d.reason
        if device is not None:
            await self._commands.issue(
                device_id=device,
                action=CommandAction.REST,
                params={"duration_s": int(action.return_after_min * 60), "reason": d.reason},
                decision_id=decision_id,
            )

    async def _evacuate(
        self, action: Evacuate, d: Decision, decision_id: int, permit: PermitFacts | None
    ) -> None:
        devices = list(targets(action, d))
        centre = (permit.lat, permit.lon) if permit and permit.lat is not None else None
        if centre is None:
            centre = self._positions().get(devices[0]) if devices else None
        if centre is None or centre[0] is None or centre[1] is None:
            raise PermitPulseError(f"evacuation of {d.permit_id}: no work point to leave")
        if action.radius_m > 0:  # also everyone nearby, whatever their permit (AlertLink-style)
            for device, (lat, lon) in self._positions().items():
                near = distance_m(centre[0], centre[1], lat, lon) <= action.radius_m
                if near and device not in devices:
                    devices.append(device)
        cmd_ids = await self._commands.issue_many(
            device_ids=devices,
            action=CommandAction.EVACUATE,
            params={"reason": d.reason, "permit_id": d.permit_id},
            decision_id=decision_id,
        )
        people: list[tuple[str, str | None, uuid.UUID | None]] = [
            (device, self._ctx.worker_of(device), cmd_id)
            for device, cmd_id in zip(devices, cmd_ids, strict=True)
        ]
        radius = permit.radius_m if permit and permit.radius_m else max(action.radius_m, 50.0)
        async with self._pool.connection() as conn, conn.transaction():
            evac_id, new = await self._evacuations.start(
                conn,
                permit_id=uuid.UUID(d.permit_id) if d.permit_id else None,
                decision_id=decision_id,
                site_id=self._site(d) or "",
                lat=float(centre[0]),
                lon=float(centre[1]),
                radius_m=float(radius),
                reason=d.reason,
                people=people,
            )
        if new:
            evac = await self._evacuations.get(evac_id)
            self._live.publish_event({"type": "evacuation", **evac.to_json()})

    async def _notify(self, action: Notify, d: Decision, decision_id: int) -> None:
        site = self._site(d)
        if site is None:
            raise PermitPulseError(f"no site to notify for decision {decision_id}")
        payload: dict[str, Any] = {
            "rule_id": d.rule_id,
            "reason": d.reason,
            "device_ids": list(d.device_ids),
            "worker_id": d.worker_id,
        }
        await self._pushes.notify(
            site_id=site,
            roles=action.roles,
            chain=action.escalate,
            message=action.message or d.reason,
            deadline_s=action.deadline_s,
            kind=d.rule_id,
            payload=payload,
            permit_id=uuid.UUID(d.permit_id) if d.permit_id else None,
            decision_id=decision_id,
        )

    def _site(self, d: Decision) -> str | None:
        if d.permit_id and (site := self._ctx.site_of_permit(d.permit_id)):
            return site
        for device in d.device_ids:
            if site := self._ctx.site_of_device(device):
                return site
        return None
