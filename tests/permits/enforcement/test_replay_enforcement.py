"""The rule engine in the replay: the live engine's decisions, with the state earlier
decisions change (suspended permits, unfit workers and their return to work)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

import permits.enforcement.replay as replay_engine
import permits.enforcement.service as live_service
from detectors.models import AlarmEvent, AlarmKind, AlarmState, Geofence, Severity, WorkerProfile
from permits.enforcement.context import LiveContext, Snapshot
from permits.enforcement.engine import evaluate_alarm
from permits.enforcement.facts import alarm_facts
from permits.enforcement.replay import ReplayContext, ReplayEnforcement, permit_type
from permits.enforcement.rules import RuleSet, load, parse

RULES = load()
SX = Geofence("P-SX", 30.0, 121.0, 40.0, devices=("w2", "w1"), watcher_device="wt", type="SX")
DH = Geofence("P-DH", 30.1, 121.1, 40.0, devices=("h1",), watcher_device="ht", type="DH", level="1")
WORKERS = {
    d: WorkerProfile(worker_id=f"worker-{d}", age=30)
    for d in ("w1", "w2", "wt", "h1", "ht", "free")
}


def engine(rules: RuleSet = RULES, fences: Iterable[Geofence] = (SX, DH)) -> ReplayEnforcement:
    return ReplayEnforcement(rules, ReplayContext(fences=fences, workers=WORKERS))


def event(
    device: str,
    kind: str,
    severity: Severity = Severity.CRITICAL,
    state: AlarmState = AlarmState.RAISED,
    ts: int = 1000,
    value: float | None = None,
) -> AlarmEvent:
    return AlarmEvent(ts, device, f"worker-{device}", AlarmKind(kind), severity, state, value)


def brief(lines: list[dict[str, Any]]) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [(x["action"], x["permit_id"], tuple(x["device_ids"])) for x in lines]


class Detectors:
    """What the replay engine reads of the detector pipeline between batches."""

    def __init__(self, devices: Iterable[str]) -> None:
        self._slot = {d: i for i, d in enumerate(devices)}
        self.heat: dict[str, int] = {}
        self.fences: list[Geofence] | None = None

    def levels(self, device_id: str) -> dict[AlarmKind, int]:
        return {AlarmKind.CORE_TEMP_HIGH: self.heat.get(device_id, 0), AlarmKind.SOS: 3}

    def set_permits(self, fences: Iterable[Geofence]) -> None:
        self.fences = list(fences)


def test_replay_confined_space_spo2_collapse_evacuates_all_then_permit_is_suspended() -> None:
    """SpO2 collapse in a confined space: evacuate every device, suspend; later alarms see a
    suspended permit (no second evacuation) and the detectors lose its geofence."""
    e = engine()
    first = e.on_alarm(event("w2", "spo2_low"))
    assert brief(first) == [
        ("evacuate", "P-SX", ("w2", "w1", "wt")),
        ("suspend", "P-SX", ()),
        ("notify", "P-SX", ()),
    ]
    assert e.ctx.permits["P-SX"].state == "suspended"
    assert brief(e.on_alarm(event("w1", "sos", ts=2000))) == [("notify", "P-SX", ())]
    det = Detectors(["w1"])
    e.after_batch(det, 2000)
    assert det.fences == [DH]


def test_replay_sos_outside_confined_space_pushes_rescue() -> None:
    """SOS on a hot-work permit: the man-down push, nothing else."""
    lines = engine().on_alarm(event("h1", "sos"))
    assert brief(lines) == [("notify", "P-DH", ())]
    assert lines[0]["reason"] == "Man down: rescue [man-down-rescue]"


def test_replay_heat_strain_downgrades_until_recovered() -> None:
    """Critical heat strain: rest for the worker's device, unfit until the heat levels stayed
    at zero for the recovery time (the live `ReturnToWork` rule), a new heat level resets it."""
    e = engine()
    lines = e.on_alarm(event("h1", "core_temp_high", value=39.2))
    assert brief(lines)[:1] == [("downgrade", "P-DH", ("h1",))]
    assert e.ctx.worker_fit("worker-h1") is False
    det = Detectors(["h1"])
    det.heat["h1"] = 3
    e.after_batch(det, 0)
    det.heat["h1"] = 0
    e.after_batch(det, 60_000)  # cool from here
    e.after_batch(det, 60_000 + 14 * 60_000)
    assert e.ctx.worker_fit("worker-h1") is False
    det.heat["h1"] = 2  # hot again: the clock restarts
    e.after_batch(det, 60_000 + 14 * 60_000 + 1000)
    det.heat["h1"] = 0
    e.after_batch(det, 16 * 60_000)
    e.after_batch(det, 16 * 60_000 + 15 * 60_000 - 1)
    assert e.ctx.worker_fit("worker-h1") is False
    e.after_batch(det, 16 * 60_000 + 15 * 60_000)
    assert e.ctx.worker_fit("worker-h1") is True


def test_replay_unfit_worker_changes_later_decisions() -> None:
    """A rule on ``worker_fit`` sees the downgrade of an earlier decision."""
    rules = parse(
        """\
version: 1
rules:
  - id: rest
    description: heat (test)
    trigger: alarm
    when: {kind: [core_temp_high], severity: [critical]}
    then: [{downgrade: {return_after_min: 1}}]
  - id: unfit-and-moving
    description: an unfit worker raised another alarm (test)
    trigger: alarm
    when: {kind: [geofence_exit], worker_fit: false}
    then: [{notify: {roles: [supervisor], message: unfit worker moving}}]
"""
    )
    e = engine(rules)
    assert e.on_alarm(event("h1", "geofence_exit", Severity.WARNING)) == []
    e.on_alarm(event("h1", "core_temp_high"))
    assert brief(e.on_alarm(event("h1", "geofence_exit", Severity.WARNING))) == [
        ("notify", "P-DH", ())
    ]


def test_replay_watcher_away_suspends_and_stops_work_once() -> None:
    """Watcher away: suspend, stop-work command to every device, push; the escalation of the
    same alarm finds the permit suspended and does nothing."""
    e = engine()
    lines = e.on_alarm(event("ht", "watcher_away", Severity.WARNING))
    assert brief(lines) == [
        ("suspend", "P-DH", ()),
        ("command", "P-DH", ("ht", "h1")),
        ("notify", "P-DH", ()),
    ]
    assert lines[0]["reason"] == "watcher left the work area (GB 30871 4.10 f)"
    assert e.on_alarm(event("ht", "watcher_away", state=AlarmState.ESCALATED)) == []


def test_replay_terminated_permit_drops_out_of_the_context() -> None:
    """A terminated permit is no longer live: its devices are on no permit afterwards."""
    rules = parse(
        """\
version: 1
rules:
  - id: end
    description: end on SOS (test)
    trigger: alarm
    when: {kind: [sos], permit_state: [active]}
    then: [{terminate: {reason: test}}]
"""
    )
    e = engine(rules)
    assert brief(e.on_alarm(event("h1", "sos"))) == [("terminate", "P-DH", ())]
    assert e.ctx.permits_of("h1") == []


def test_replay_without_permits_only_permitless_rules_act() -> None:
    """No permits: SOS pushes the rescue, critical SpO2 and heat strain downgrade; nothing
    evacuates or suspends."""
    e = engine(fences=())
    assert brief(e.on_alarm(event("free", "sos"))) == [("notify", None, ())]
    assert brief(e.on_alarm(event("free", "spo2_low"))) == [
        ("downgrade", None, ("free",)),
        ("notify", None, ()),
    ]
    assert e.on_alarm(event("free", "watcher_away")) == []


ALARMS = [
    event("w1", "spo2_low"),
    event("w1", "spo2_low", Severity.WARNING),
    event("w2", "fall"),
    event("wt", "device_offline", Severity.CRITICAL, value=130.0),
    event("wt", "device_offline", Severity.WARNING, value=70.0),
    event("h1", "sos"),
    event("h1", "spo2_low"),
    event("h1", "hr_sustained_high"),
    event("ht", "watcher_away", Severity.WARNING),
    event("h1", "geofence_exit", Severity.WARNING),
    event("h1", "sos", state=AlarmState.CLEARED),
    event("free", "strain_high"),
]


@pytest.mark.parametrize("alarm", ALARMS, ids=lambda a: f"{a.device_id}-{a.kind}")
def test_replay_and_live_engine_make_the_same_decisions(alarm: AlarmEvent) -> None:
    """The same alarm facts, through the live service's path (its conversion, its
    `evaluate_alarm`, a `LiveContext` holding the same permits) and through the replay's,
    give the same decisions and the same action lines."""
    live_facts = live_service.alarm_facts  # type: ignore[attr-defined]
    assert live_facts is replay_engine.alarm_facts  # type: ignore[attr-defined]
    live_evaluate = live_service.evaluate_alarm  # type: ignore[attr-defined]
    replay_evaluate = replay_engine.evaluate_alarm  # type: ignore[attr-defined]
    assert live_evaluate is replay_evaluate is evaluate_alarm
    e = engine()
    live = LiveContext(None, work_area_radius_m=50.0)  # type: ignore[arg-type]  # no database read
    live.snap = Snapshot(
        permits=dict(e.ctx.permits),
        by_device={d: list(e.ctx.permits_of(d)) for d in WORKERS},
    )
    live_decisions = [d for f in live_facts([alarm]) for d in live_evaluate(RULES, f, live)]
    replay_lines = e.on_alarm(alarm)
    assert e.decisions == live_decisions
    assert replay_lines == [x for d in live_decisions for x in d.action_lines()]


@pytest.mark.parametrize(
    ("given", "code"), [("SX", "SX"), ("sx", "SX"), ("confined_space", "SX"), ("hot_work", "DH")]
)
def test_permit_type_accepts_codes_and_english_names(given: str, code: str) -> None:
    """The permits file may say ``SX`` or ``confined_space``; the rules see the code."""
    assert permit_type(given) == code


def test_permit_type_unknown_is_refused() -> None:
    """A typo in a permit type is an error, not a permit no rule matches."""
    with pytest.raises(ValueError, match="unknown permit type 'confined'"):
        permit_type("confined")


def test_alarm_facts_skip_acknowledgements() -> None:
    """An acknowledgement is not a fact for the rules."""
    assert alarm_facts([event("w1", "sos", state=AlarmState.ACKNOWLEDGED)]) == []
