"""SIMOPS distance and same-object rules (5.2.8-9, 6.7, 7.6, 7.10, 8.2.8, 4.7)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from permits import conflicts
from permits.config import PermitSettings
from permits.models import Permit, PermitState, PermitType
from tests.permits import factories as f

S = PermitSettings()


def permit(
    ptype: PermitType,
    metres: float = 0.0,
    *,
    fields: dict[str, Any] | None = None,
    activities: tuple[str, ...] = (),
    coordinator: str | None = None,
) -> Permit:
    return Permit(
        permit_id=uuid.uuid4(),
        number=f"{ptype}-{uuid.uuid4().hex[:4]}",
        site_id=f.SITE,
        type=ptype,
        level=None,
        level_facts=(),
        state=PermitState.ACTIVE,
        template_version="v",
        title="t",
        applicant="app",
        watcher="wat",
        workers=(),
        location=f.point_at(metres),
        location_text="x",
        fields=fields or {},
        activities=activities,
        risks=(),
        measures=(),
        planned_start=f.T0,
        planned_end=f.T0 + dt.timedelta(hours=4),
        host_permit_id=None,
        coordinator=coordinator,
        round=1,
        version=1,
        created_at=f.T0,
    )


def rules(subject: Permit, others: list[Permit]) -> list[str]:
    return [x.rule for x in conflicts.check(subject, others, S)]


HOT = {"location_class": "other"}


@pytest.mark.parametrize(
    ("activity", "radius", "rule"),
    [
        ("venting_flammable_gas", 30, "conflict.hot_work_venting"),
        ("discharging_flammable_liquid", 15, "conflict.hot_work_discharge"),
        ("painting", 10, "conflict.hot_work_painting"),
        ("solvent_cleaning", 10, "conflict.hot_work_painting"),
        ("dust_sweeping", 10, "conflict.hot_work_painting"),
    ],
)
def test_conflict_hot_work_radius_boundary(activity: str, radius: float, rule: str) -> None:
    """Inside the radius of 5.2.9 conflicts, just outside does not — from either side."""
    hot = permit(PermitType.DH, fields=HOT)
    near = permit(PermitType.GC, radius - 0.5, activities=(activity,))
    far = permit(PermitType.GC, radius + 0.5, activities=(activity,))
    assert rules(hot, [near]) == [rule]
    assert rules(near, [hot]) == [rule]
    assert rules(hot, [far]) == []


def test_conflict_draining_in_same_tank_dike() -> None:
    """No draining or sampling in the tank dike of hot work (5.2.8), at any distance."""
    hot = permit(PermitType.DH, fields={**HOT, "tank_dike_id": "D-1"})
    drain = permit(
        PermitType.MB,
        500,
        fields={"tank_dike_id": "D-1", "in_fire_explosion_area": False},
        activities=("draining",),
    )
    other = permit(
        PermitType.MB,
        500,
        fields={"tank_dike_id": "D-2", "in_fire_explosion_area": False},
        activities=("draining",),
    )
    assert rules(hot, [drain]) == ["conflict.hot_work_tank_dike"]
    assert rules(hot, [other]) == []


@pytest.mark.parametrize(
    ("metres", "area", "hit"), [(29.5, True, True), (30.5, True, False), (10, False, False)]
)
def test_conflict_hot_work_near_blinding(metres: float, area: bool, hit: bool) -> None:
    """No hot work within 30 m of blinding in a fire/explosion area (7.6)."""
    hot = permit(PermitType.DH, fields=HOT)
    mb = permit(PermitType.MB, metres, fields={"pipe_id": "P", "in_fire_explosion_area": area})
    assert (rules(hot, [mb]) == ["conflict.hot_work_blinding"]) is hit


def test_conflict_blinding_same_pipe() -> None:
    """One blinding job per pipe (7.10); another pipe is fine."""
    a = permit(PermitType.MB, fields={"pipe_id": "P-1"})
    assert rules(a, [permit(PermitType.MB, 300, fields={"pipe_id": "P-1"})]) == [
        "conflict.blinding_same_pipe"
    ]
    assert rules(a, [permit(PermitType.MB, 300, fields={"pipe_id": "P-2"})]) == []


def test_conflict_painting_in_confined_space_with_hot_work() -> None:
    """No painting in the confined space where hot work goes on (6.7)."""
    hot = permit(PermitType.DH, fields={**HOT, "confined_space_id": "V-1"})
    paint = permit(PermitType.SX, 100, fields={"space_id": "V-1"}, activities=("painting",))
    assert rules(hot, [paint]) == ["conflict.confined_space_painting"]


def test_conflict_fall_line_tag_or_stacked_heights() -> None:
    """No work above and below on one fall line (8.2.8): same tag, or close at other heights."""
    up = permit(PermitType.GC, fields={"height_m": 12.0, "fall_line": "A"})
    assert rules(up, [permit(PermitType.GC, 50, fields={"height_m": 3.0, "fall_line": "A"})]) == [
        "conflict.fall_line"
    ]
    assert rules(up, [permit(PermitType.DT, 2.5)]) == ["conflict.fall_line"]
    assert rules(up, [permit(PermitType.DT, 3.5)]) == []
    level = permit(PermitType.GC, 2.0, fields={"height_m": 12.0})
    assert rules(up, [level]) == []


def test_simops_coordinator_required_within_radius() -> None:
    """Live permits within 50 m need a named coordinator (4.7)."""
    a = permit(PermitType.DT)
    near, far = permit(PermitType.DL, 49), permit(PermitType.DL, 51)
    assert conflicts.simops(a, [far], S) is None
    found = conflicts.simops(a, [near], S)
    assert found is not None
    assert found.rule == "simops.coordinator"
    with_coordinator = permit(PermitType.DT, coordinator="post")
    assert conflicts.simops(with_coordinator, [near], S) is None
