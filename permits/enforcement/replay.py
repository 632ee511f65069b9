"""The rule engine in `permitpulse replay`: the replay's `Context` and its action source.

The decisions come from the same `evaluate_alarm` the live service calls, fed the same facts
(`alarm_facts`). What live carries out against the database, the replay keeps in memory,
as far as it changes later decisions: a suspended or terminated permit (the executor's guards
and the permit domain's transition table), an unfit worker after a downgrade and the return
to work (`recovery.ReturnToWork`, the live rule), and the detectors' geofences, which live
re-reads for active permits only. Nothing is sent and nobody is pushed; each decision's
actions are written as JSON lines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from detectors.models import AlarmEvent, Geofence, WorkerProfile
from permits.enforcement.context import LIVE_STATES
from permits.enforcement.engine import Decision, PermitFacts, evaluate_alarm, targets
from permits.enforcement.facts import alarm_facts
from permits.enforcement.recovery import Levels, ReturnToWork, hot
from permits.enforcement.rules import Downgrade, RuleSet, Suspend, Terminate
from permits.models import PermitState, PermitType
from permits.workflow import allowed

#: English names accepted for the GB 30871 type codes in a replay's permits file.
TYPE_ALIASES: Mapping[str, PermitType] = {
    "hot_work": PermitType.DH,
    "confined_space": PermitType.SX,
    "blinding": PermitType.MB,
    "work_at_height": PermitType.GC,
    "lifting": PermitType.DZ,
    "temporary_electricity": PermitType.YD,
    "excavation": PermitType.DT,
    "road_breaking": PermitType.DL,
}


def permit_type(value: str) -> str:
    """A permits-file ``type``: a GB 30871 code (``SX``) or its English name
    (``confined_space``) → the code the rules name.

    Raises:
        ValueError: for anything else (a typo must not silently disable a rule).
    """
    code = value.strip()
    if code.upper() in PermitType.__members__:
        return PermitType[code.upper()].value
    if code.lower() in TYPE_ALIASES:
        return TYPE_ALIASES[code.lower()].value
    names = ", ".join([*PermitType.__members__, *TYPE_ALIASES])
    raise ValueError(f"unknown permit type {value!r}; one of {names}")


class Detectors(Levels, Protocol):
    """What the replay's engine touches of the detector pipeline between batches."""

    def set_permits(self, fences: Iterable[Geofence]) -> None: ...


class ReplayContext:
    """The engine's `Context` over the replay's permits and workers, with the state that
    earlier decisions changed. Every permit of the file starts active."""

    def __init__(self, *, fences: Iterable[Geofence], workers: Mapping[str, WorkerProfile]) -> None:
        self.fences = {f.permit_id: f for f in fences}
        self.permits: dict[str, PermitFacts] = {
            pid: PermitFacts(
                permit_id=pid,
                type=f.type,
                level=f.level,
                state=PermitState.ACTIVE.value,
                devices=tuple(sorted(set(f.devices))),  # live reads them ordered by device id
                watcher_device=f.watcher_device,
                lat=f.lat,
                lon=f.lon,
                radius_m=f.radius_m,
            )
            for pid, f in sorted(self.fences.items())
        }
        self.worker_by_device = {d: p.worker_id for d, p in workers.items()}
        #: Unfit workers → minutes of recovery they need (live: ``worker_fitness``).
        self.unfit: dict[str, float] = {}

    # -- the engine's Context protocol ----------------------------------------------------

    def permits_of(self, device_id: str) -> Sequence[PermitFacts]:
        """Live permits (approved, active, suspended) the device is on, by permit id."""
        return [
            p
            for p in self.permits.values()
            if p.state in LIVE_STATES and device_id in p.all_devices
        ]

    def worker_fit(self, worker_id: str | None) -> bool | None:
        if worker_id is None:
            return None
        return worker_id not in self.unfit

    # -- what carrying a decision out changes ----------------------------------------------

    def apply(self, decision: Decision) -> bool:
        """Mirror the executor's state changes; True when a permit changed state."""
        permit = self.permits.get(decision.permit_id or "")
        changed = False
        for action in decision.actions:
            if isinstance(action, Downgrade):
                device = next(iter(targets(action, decision)), None)
                worker = decision.worker_id or self.worker_by_device.get(device or "")
                if worker is not None:
                    self.unfit[worker] = action.return_after_min
            elif isinstance(action, Suspend) and permit is not None:
                changed |= self._move(permit, PermitState.SUSPENDED, only_from=PermitState.ACTIVE)
            elif isinstance(action, Terminate) and permit is not None:
                changed |= self._move(permit, PermitState.TERMINATED)
        return changed

    def _move(
        self, before: PermitFacts, to: PermitState, only_from: PermitState | None = None
    ) -> bool:
        """One transition, as the executor guards it (from the state the decision saw)."""
        if only_from is not None and before.state != only_from:
            return False
        if before.state not in LIVE_STATES or not allowed(PermitState(before.state), to):
            return False
        self.permits[before.permit_id] = dataclasses.replace(
            self.permits[before.permit_id], state=to.value
        )
        return True

    def devices_of_worker(self, worker_id: str) -> list[str]:
        return sorted(d for d, w in self.worker_by_device.items() if w == worker_id)

    def active_fences(self) -> list[Geofence]:
        """The geofences live gives the detectors: active permits only."""
        return [
            self.fences[pid]
            for pid, p in self.permits.items()
            if p.state == PermitState.ACTIVE.value
        ]


class ReplayEnforcement:
    """`detectors.replay.ActionSource` through the live rule engine."""

    def __init__(self, rules: RuleSet, ctx: ReplayContext) -> None:
        self.rules = rules
        self.ctx = ctx
        self.decisions: list[Decision] = []
        self._recovery = ReturnToWork()
        self._fences_stale = False

    def on_alarm(self, event: AlarmEvent) -> list[dict[str, Any]]:
        """The action lines one alarm change causes, decision by decision, in rule order."""
        lines: list[dict[str, Any]] = []
        for fact in alarm_facts([event]):
            for decision in evaluate_alarm(self.rules, fact, self.ctx):
                self.decisions.append(decision)
                lines.extend(decision.action_lines())
                if self.ctx.apply(decision):
                    self._fences_stale = True
        return lines

    def after_batch(self, pipeline: Detectors, now_ms: int) -> None:
        """What live does between batches: new geofences after a permit changed state, and
        the return to work of rested workers."""
        if self._fences_stale:
            pipeline.set_permits(self.ctx.active_fences())
            self._fences_stale = False
        unfit = self.ctx.unfit
        if not unfit:
            self._recovery.clear()
            return

        def is_hot(worker_id: str) -> bool:
            return hot(pipeline, self.ctx.devices_of_worker(worker_id))

        for worker_id in self._recovery.due(unfit, is_hot, now_ms):
            del unfit[worker_id]
            self._recovery.forget(worker_id)
