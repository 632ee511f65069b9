"""The replay decides as the live service does: the same alarm changes, fed to the running
service (database, broker, executor) and to the replay's engine, give the same decisions
with the same facts, including what earlier decisions changed (suspension, fitness)."""

from __future__ import annotations

from typing import Any

import orjson

from detectors.models import AlarmEvent, AlarmKind, AlarmState, Geofence, Severity, WorkerProfile
from permits.enforcement.replay import ReplayContext, ReplayEnforcement
from tests.permits.enforcement.test_live_enforcement import Plant, plant  # noqa: F401

C, W = Severity.CRITICAL, Severity.WARNING
#: (device, kind, severity, state, value): an evacuation, an SOS on the now suspended permit,
#: heat strain and a later alarm of the unfit worker, a watcher walking away (twice), and a
#: silent device in the suspended confined space.
ALARMS = [
    ("ww-sx-01", "spo2_low", C, "raised", 85.0),
    ("ww-sx-02", "sos", C, "raised", 1.0),
    ("ww-dh-02", "hr_sustained_high", C, "raised", 171.0),
    ("ww-dh-02", "geofence_exit", W, "raised", 30.0),
    ("ww-gc-w", "watcher_away", W, "raised", 40.0),
    ("ww-gc-w", "watcher_away", C, "escalated", 80.0),
    ("ww-sx-01", "device_offline", C, "raised", 130.0),
]


def replay_engine(p: Plant) -> ReplayEnforcement:
    snap = p.rt.enforcement.ctx.snap
    fences = [
        Geofence(
            permit_id=f.permit_id,
            lat=f.lat or 0.0,
            lon=f.lon or 0.0,
            radius_m=f.radius_m or 50.0,
            devices=f.devices,
            watcher_device=f.watcher_device,
            type=f.type,
            level=f.level,
        )
        for f in snap.permits.values()
        if f.state == "active"
    ]
    workers = {
        d.device_id: WorkerProfile(worker_id=d.worker_id)
        for d in snap.devices.values()
        if d.worker_id is not None
    }
    return ReplayEnforcement(p.rt.enforcement.rules, ReplayContext(fences=fences, workers=workers))


async def test_replay_and_live_service_store_the_same_decisions(plant: Plant) -> None:  # noqa: F811
    """Alarm by alarm, the live service's stored decisions equal the replay's."""
    live = plant.rt.enforcement
    replay = replay_engine(plant)
    ts = 1_752_543_000_000
    for n, (device, kind, severity, state, value) in enumerate(ALARMS):
        assert live.ctx.permits_of(device) == replay.ctx.permits_of(device), device
        worker = live.ctx.worker_of(device)
        event = AlarmEvent(
            ts + n * 1000, device, worker, AlarmKind(kind), severity, AlarmState(state), value
        )
        replay.on_alarm(event)
        await live._on_alarms([event])
        await live.lanes.wait_idle()  # decisions are carried out in the permit's lane
        await live.refresh()  # what the permit-event listener does after a transition
    stored = plant.rows(
        "SELECT rule_id, permit_id::text, device_ids, worker_id, facts"
        " FROM decisions ORDER BY decision_id"
    )
    expected = [
        (d.rule_id, d.permit_id, list(d.device_ids), d.worker_id, _json(d.facts))
        for d in replay.decisions
    ]
    assert [tuple(r) for r in stored] == expected
    rules = [d.rule_id for d in replay.decisions]
    assert rules == [
        "confined-space-critical-evacuate",
        "man-down-rescue",
        "heat-strain-downgrade",
        "geofence-exit-warn",
        "watcher-away-suspend",
    ]
    assert replay.decisions[3].facts["worker_fit"] is False


def _json(facts: dict[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(facts, default=str))
