"""The rule engine's decisions for the default rule set (SPEC §5), at each boundary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permits.enforcement.engine import (
    AlarmFacts,
    Decision,
    PermitFacts,
    evaluate_alarm,
    evaluate_permit,
)
from permits.enforcement.rules import Trigger, load

RULES = load()
SX = PermitFacts("P-SX", "SX", "", "active", devices=("w1", "w2"), watcher_device="wt")
DH = PermitFacts("P-DH", "DH", "1", "active", devices=("h1",), watcher_device="ht")


@dataclass
class Ctx:
    permits: dict[str, list[PermitFacts]] = field(default_factory=dict)
    fit: dict[str, bool] = field(default_factory=dict)

    def permits_of(self, device_id: str) -> Sequence[PermitFacts]:
        return self.permits.get(device_id, [])

    def worker_fit(self, worker_id: str | None) -> bool | None:
        return self.fit.get(worker_id or "")


CTX = Ctx(permits={d: [SX] for d in SX.all_devices} | {d: [DH] for d in DH.all_devices})


def alarm(
    device: str,
    kind: str,
    severity: str = "critical",
    state: str = "raised",
    value: float | None = None,
) -> AlarmFacts:
    return AlarmFacts(1000, device, f"worker-{device}", kind, severity, state, value)


def actions(decisions: list[Decision]) -> list[tuple[str, str | None, tuple[str, ...]]]:
    return [
        (line["action"], line["permit_id"], tuple(line["device_ids"]))
        for d in decisions
        for line in d.action_lines()
    ]


@pytest.mark.parametrize("kind", ["spo2_low", "fall", "no_motion", "sos", "gas_alarm"])
def test_confined_space_critical_evacuates_everyone_and_suspends(kind: str) -> None:
    """Critical SpO2 / man-down / SOS / gas in a confined space: evacuate all, suspend, push."""
    decisions = evaluate_alarm(RULES, alarm("w2", kind), CTX)
    assert [d.rule_id for d in decisions] == ["confined-space-critical-evacuate"]
    assert actions(decisions) == [
        ("evacuate", "P-SX", ("w2", "w1", "wt")),
        ("suspend", "P-SX", ()),
        ("notify", "P-SX", ()),
    ]


def test_confined_space_warning_spo2_does_not_evacuate() -> None:
    """A warning-level SpO2 alarm is not an evacuation."""
    assert evaluate_alarm(RULES, alarm("w1", "spo2_low", "warning"), CTX) == []


def test_critical_spo2_on_hot_work_downgrades_only_that_worker() -> None:
    """Outside a confined space, critical SpO2 sends that worker to rest."""
    decisions = evaluate_alarm(RULES, alarm("h1", "spo2_low"), CTX)
    assert actions(decisions)[0] == ("downgrade", "P-DH", ("h1",))
    assert "evacuate" not in [a for a, _, _ in actions(decisions)]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (59.9, []),
        (60.0, ["confined-space-offline-warn"]),
        (119.9, ["confined-space-offline-warn"]),
        (120.0, ["confined-space-offline-evacuate"]),
    ],
)
def test_confined_space_device_offline_boundaries(seconds: float, expected: list[str]) -> None:
    """Offline ≥ 60 s: push to the watcher; ≥ 120 s: evacuate (SPEC §5)."""
    decisions = evaluate_alarm(RULES, alarm("w1", "device_offline", "warning", value=seconds), CTX)
    assert [d.rule_id for d in decisions] == expected


@pytest.mark.parametrize("kind", ["hr_sustained_high", "core_temp_high", "strain_high"])
def test_critical_heat_strain_downgrades_worker(kind: str) -> None:
    """Critical heat strain: rest command to that worker's device and a push."""
    decisions = evaluate_alarm(RULES, alarm("h1", kind), CTX)
    assert [d.rule_id for d in decisions] == ["heat-strain-downgrade"]
    assert actions(decisions) == [("downgrade", "P-DH", ("h1",)), ("notify", "P-DH", ())]


def test_heat_strain_warning_is_not_a_downgrade() -> None:
    """Core temperature at the warning level only raises the alarm."""
    assert evaluate_alarm(RULES, alarm("h1", "core_temp_high", "warning"), CTX) == []


def test_watcher_away_suspends_permit_and_stops_work() -> None:
    """GB 30871 4.10 f: watcher away → permit taken back, every device told to stop."""
    decisions = evaluate_alarm(RULES, alarm("ht", "watcher_away", "warning"), CTX)
    assert actions(decisions) == [
        ("suspend", "P-DH", ()),
        ("command", "P-DH", ("ht", "h1")),
        ("notify", "P-DH", ()),
    ]


def test_watcher_away_on_suspended_permit_does_nothing() -> None:
    """A permit already taken back is not suspended twice."""
    ctx = Ctx(permits={"ht": [PermitFacts("P", "DH", "1", "suspended", ("h1",), "ht")]})
    assert evaluate_alarm(RULES, alarm("ht", "watcher_away", "warning"), ctx) == []


def test_man_down_without_permit_still_calls_for_rescue() -> None:
    """A worker down is rescued whether or not a permit is active."""
    decisions = evaluate_alarm(RULES, alarm("lonely", "fall"), Ctx())
    assert [d.rule_id for d in decisions] == ["man-down-rescue"]
    assert decisions[0].permit_id is None


@pytest.mark.parametrize("state", ["cleared"])
def test_cleared_alarm_triggers_nothing(state: str) -> None:
    """A clearing alarm is recorded but does not act."""
    assert evaluate_alarm(RULES, alarm("w1", "spo2_low", state=state), CTX) == []


def test_permit_expired_terminates_and_commands_every_device() -> None:
    """Expiry ends the permit and tells its devices to stop work."""
    decisions = evaluate_permit(RULES, Trigger.PERMIT_EXPIRED, SX, 5000)
    assert actions(decisions) == [
        ("terminate", "P-SX", ()),
        ("command", "P-SX", ("w1", "w2", "wt")),
        ("notify", "P-SX", ()),
    ]
    assert decisions[0].facts["permit"]["permit_id"] == "P-SX"


def test_decision_keeps_the_facts_that_caused_it() -> None:
    """Every decision can be explained afterwards."""
    (d,) = evaluate_alarm(RULES, alarm("w1", "sos"), CTX)
    assert d.facts["alarm"]["kind"] == "sos"
    assert d.facts["permit"] == {"permit_id": "P-SX", "type": "SX", "level": "", "state": "active"}
    assert d.facts["rule"] == "confined-space-critical-evacuate"


kinds = st.sampled_from(
    [
        "spo2_low",
        "fall",
        "sos",
        "device_offline",
        "watcher_away",
        "core_temp_high",
        "geofence_exit",
        "hr_drift",
    ]
)


@given(
    kinds,
    st.sampled_from(["notice", "warning", "critical"]),
    st.sampled_from(["raised", "escalated", "cleared"]),
    st.one_of(st.none(), st.floats(allow_nan=True)),
    st.sampled_from(["w1", "h1", "ht", "x"]),
)
def test_evaluate_any_alarm_is_deterministic_and_never_crashes(
    kind: str, sev: str, state: str, value: float | None, device: str
) -> None:
    """Same facts, same decisions; unknown devices and NaN values are handled."""
    a = AlarmFacts(1, device, None, kind, sev, state, value)
    assert evaluate_alarm(RULES, a, CTX) == evaluate_alarm(RULES, a, CTX)


@pytest.mark.parametrize("value", [None, float("nan")])
def test_value_condition_with_unknown_value_does_not_match(value: float | None) -> None:
    """An offline alarm without a duration is not taken as 'long enough'."""
    assert evaluate_alarm(RULES, alarm("w1", "device_offline", "warning", value=value), CTX) == []


def test_critical_spo2_on_suspended_confined_space_neither_downgrades_nor_evacuates_again() -> None:
    """Once the confined space is being evacuated (permit suspended), a second worker's
    critical SpO2 is already covered: no downgrade rule fires for SX."""
    suspended = PermitFacts(
        "P-SX", "SX", "", "suspended", devices=("w1", "w2"), watcher_device="wt"
    )
    ctx = Ctx(permits={"w2": [suspended]})
    assert evaluate_alarm(RULES, alarm("w2", "spo2_low"), ctx) == []
