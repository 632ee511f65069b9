"""The rule engine's pure core: facts in, decisions out. No I/O, no clock, no state.

The same function decides live (fed by the ingest's detector alarms and the permit timers)
and in `permitpulse replay`; only what feeds it and what executes its decisions differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from permits.enforcement.rules import (
    Action,
    Command,
    Conditions,
    Downgrade,
    Evacuate,
    Notify,
    Rule,
    RuleSet,
    Suspend,
    Terminate,
    Trigger,
)


@dataclass(frozen=True, slots=True)
class PermitFacts:
    """What the engine knows of a permit."""

    permit_id: str
    type: str
    level: str
    state: str
    devices: tuple[str, ...] = ()
    watcher_device: str | None = None
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None

    @property
    def all_devices(self) -> tuple[str, ...]:
        """Crew and watcher, each once, crew first."""
        extra = (self.watcher_device,) if self.watcher_device else ()
        return tuple(dict.fromkeys(self.devices + extra))


@dataclass(frozen=True, slots=True)
class AlarmFacts:
    """One alarm change, as the detectors' policy emits it."""

    ts_ms: int
    device_id: str
    worker_id: str | None
    kind: str
    severity: str
    state: str
    value: float | None = None


class Context(Protocol):
    """Where the engine looks facts up (the live registry or the replay's files)."""

    def permits_of(self, device_id: str) -> Sequence[PermitFacts]:
        """Permits the device is on (crew or watcher)."""
        ...

    def worker_fit(self, worker_id: str | None) -> bool | None:
        """The worker's fitness flag; None when unknown."""
        ...


@dataclass(frozen=True, slots=True)
class Decision:
    """A rule fired: its actions, aimed at a permit and devices, with the facts that caused it."""

    ts_ms: int
    rule_id: str
    reason: str
    actions: tuple[Action, ...]
    permit_id: str | None
    device_ids: tuple[str, ...]
    worker_id: str | None
    facts: dict[str, Any] = field(default_factory=dict)

    def action_lines(self) -> list[dict[str, Any]]:
        """The replay's JSON-lines form: one object per action."""
        return [
            {
                "type": "action",
                "ts_ms": self.ts_ms,
                "action": a.action,
                "permit_id": self.permit_id,
                "device_ids": list(targets(a, self)),
                "reason": _reason(a, self),
            }
            for a in self.actions
        ]


def targets(action: Action, decision: Decision) -> tuple[str, ...]:
    """The devices an action commands (the alarm's device for a downgrade, else the permit's)."""
    if isinstance(action, Downgrade):
        return decision.device_ids[:1]
    if isinstance(action, Notify | Suspend | Terminate):
        return ()
    return decision.device_ids


def _reason(action: Action, decision: Decision) -> str:
    if isinstance(action, Suspend | Terminate):
        return action.reason
    if isinstance(action, Notify | Command) and action.message:
        return f"{action.message} [{decision.rule_id}]"
    return decision.reason


def evaluate_alarm(rules: RuleSet, alarm: AlarmFacts, ctx: Context) -> list[Decision]:
    """Decisions for one alarm change, once per permit the device is on (or once without)."""
    permits: Sequence[PermitFacts | None] = ctx.permits_of(alarm.device_id) or [None]
    fit = ctx.worker_fit(alarm.worker_id)
    out: list[Decision] = []
    for permit in permits:
        for rule in rules.rules:
            if rule.trigger is not Trigger.ALARM or not _alarm_matches(
                rule.when, alarm, permit, fit
            ):
                continue
            out.append(_decide(rule, alarm.ts_ms, permit, alarm, _alarm_facts(alarm, permit, fit)))
            if rule.final:
                break
    return out


def evaluate_permit(
    rules: RuleSet, trigger: Trigger, permit: PermitFacts, ts_ms: int
) -> list[Decision]:
    """Decisions for a permit event (expired, due)."""
    out: list[Decision] = []
    facts = {"trigger": trigger.value, "permit": _permit_facts(permit)}
    for rule in rules.rules:
        if rule.trigger is trigger and _permit_matches(rule.when, permit):
            out.append(_decide(rule, ts_ms, permit, None, facts))
            if rule.final:
                break
    return out


def _decide(
    rule: Rule,
    ts_ms: int,
    permit: PermitFacts | None,
    alarm: AlarmFacts | None,
    facts: dict[str, Any],
) -> Decision:
    evacuating = any(isinstance(a, Evacuate | Command) for a in rule.then)
    if permit is not None and (evacuating or alarm is None):
        devices = permit.all_devices
        if alarm is not None and alarm.device_id in devices:  # the alarm's device first
            devices = (alarm.device_id, *(d for d in devices if d != alarm.device_id))
    else:
        devices = (alarm.device_id,) if alarm else ()
    summary = rule.description.split(":")[0]
    if alarm is not None:
        summary = f"{alarm.kind} {alarm.severity} on {alarm.device_id}: {summary}"
    return Decision(
        ts_ms=ts_ms,
        rule_id=rule.id,
        reason=summary,
        actions=rule.then,
        permit_id=permit.permit_id if permit else None,
        device_ids=devices,
        worker_id=alarm.worker_id if alarm else None,
        facts={**facts, "rule": rule.id},
    )


def _alarm_matches(
    when: Conditions, alarm: AlarmFacts, permit: PermitFacts | None, fit: bool | None
) -> bool:
    if when.kind is not None and alarm.kind not in when.kind:
        return False
    if when.severity is not None and alarm.severity not in when.severity:
        return False
    if when.state is not None and alarm.state not in when.state:
        return False
    if when.value_gte is not None and not (
        alarm.value is not None and alarm.value >= when.value_gte
    ):
        return False
    if when.value_lt is not None and not (alarm.value is not None and alarm.value < when.value_lt):
        return False
    if when.worker_fit is not None and fit is not when.worker_fit:
        return False
    if (
        when.on_permit is not None
        and (permit is not None and permit.state == "active") != when.on_permit
    ):
        return False
    excluded = when.permit_type_not or ()
    if permit is not None and permit.type in excluded:
        return False
    if when.role is not None:
        role = None
        if permit is not None:
            role = "watcher" if alarm.device_id == permit.watcher_device else "worker"
        if role not in when.role:
            return False
    return _permit_matches(when, permit)


def _permit_matches(when: Conditions, permit: PermitFacts | None) -> bool:
    checks = (
        (when.permit_type, "type"),
        (when.permit_level, "level"),
        (when.permit_state, "state"),
    )
    for allowed, attr in checks:
        if allowed is not None and (permit is None or getattr(permit, attr) not in allowed):
            return False
    return True


def _permit_facts(permit: PermitFacts | None) -> dict[str, Any] | None:
    if permit is None:
        return None
    return {
        "permit_id": permit.permit_id,
        "type": permit.type,
        "level": permit.level,
        "state": permit.state,
    }


def _alarm_facts(alarm: AlarmFacts, permit: PermitFacts | None, fit: bool | None) -> dict[str, Any]:
    return {
        "trigger": "alarm",
        "alarm": {
            "ts_ms": alarm.ts_ms,
            "device_id": alarm.device_id,
            "worker_id": alarm.worker_id,
            "kind": alarm.kind,
            "severity": alarm.severity,
            "state": alarm.state,
            "value": alarm.value,
        },
        "permit": _permit_facts(permit),
        "worker_fit": fit,
    }


__all__ = [
    "AlarmFacts",
    "Command",
    "Context",
    "Decision",
    "PermitFacts",
    "evaluate_alarm",
    "evaluate_permit",
    "targets",
]
