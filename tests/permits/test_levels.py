"""Levels from the facts (5.1.1-5.1.4, 5.2.15, 8.1.2-8.1.3, 9.1) and validity caps."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from permits.config import PermitSettings
from permits.errors import RuleViolation
from permits.levels import (
    WorkCalendar,
    compute_level,
    height_level,
    hot_work_level,
    lifting_level,
    validity_cap,
)
from permits.models import PermitType

CAL = WorkCalendar(tz=ZoneInfo("Asia/Shanghai"), night_start=dt.time(22), night_end=dt.time(6))
SH = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, h: int, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=SH)


TUE_10 = at(2026, 12, 1, 10)


def dh(
    fields: dict[str, object],
    start: dt.datetime = TUE_10,
    hours: float = 4,
    cal: WorkCalendar = CAL,
) -> str | None:
    return hot_work_level(fields, start, start + dt.timedelta(hours=hours), cal).level


@pytest.mark.parametrize(
    ("fields", "level", "clause"),
    [
        ({"location_class": "fire_explosion_area", "running_plant": True}, "special", "5.1.2"),
        ({"location_class": "other", "major_hazard_tank_dike": True}, "special", "5.1.2"),
        ({"location_class": "fire_explosion_area", "hot_tapping": True}, "special", "5.1.2"),
        ({"location_class": "fire_explosion_area"}, "1", "5.1.3"),
        ({"location_class": "pipe_rack"}, "1", "5.1.3"),
        ({"location_class": "other"}, "2", "5.1.3"),
        ({"location_class": "fire_explosion_area", "unit_shut_down_purged": True}, "2", "5.1.4"),
    ],
)
def test_hot_work_level_from_location_and_plant_state(
    fields: dict[str, object], level: str, clause: str
) -> None:
    """The base level follows the location and plant state, with the deciding clause."""
    result = hot_work_level(fields, TUE_10, TUE_10 + dt.timedelta(hours=4), CAL)
    assert (result.level, result.facts[0].clause) == (level, clause)


def test_hot_work_running_and_shut_down_contradiction_refused() -> None:
    """A running plant cannot be declared shut down and purged (5.1.4)."""
    with pytest.raises(RuleViolation, match="running plant"):
        dh(
            {
                "location_class": "fire_explosion_area",
                "running_plant": True,
                "unit_shut_down_purged": True,
            }
        )


@pytest.mark.parametrize(
    ("start", "hours", "level"),
    [
        (at(2026, 12, 1, 17), 4.99, "2"),  # ends 21:59:24, before night
        (at(2026, 12, 1, 17), 5.02, "1"),  # ends 22:01: night
        (at(2026, 12, 2, 6), 2, "2"),  # starts when night ends
        (at(2026, 12, 2, 5, 59), 2, "1"),  # one minute of night
    ],
)
def test_hot_work_night_boundary_raises_one_level(
    start: dt.datetime, hours: float, level: str
) -> None:
    """Night (22:00-06:00 by policy) raises 二级 to 一级 (5.1.1)."""
    assert dh({"location_class": "other"}, start, hours) == level


def test_hot_work_public_holiday_raises_and_names_it() -> None:
    """National Day (holidays: CN) raises 一级 to 特级 and says why (5.1.1)."""
    r = hot_work_level(
        {"location_class": "pipe_rack"}, at(2026, 10, 1, 9), at(2026, 10, 1, 12), CAL
    )
    assert r.level == "special"
    assert [f.fact for f in r.facts][:2] == ["location_class", "holiday"]


def test_hot_work_weekend_raises_but_adjusted_working_saturday_does_not() -> None:
    """A Sunday is a rest day; Saturday 2026-02-14 is an adjusted working day (调休)."""
    assert dh({"location_class": "other"}, at(2026, 12, 6, 9), 3) == "1"  # Sunday
    assert dh({"location_class": "other"}, at(2026, 2, 14, 9), 3) == "2"  # working Saturday


def test_hot_work_company_overrides_calendar() -> None:
    """Company rest and work days override the public calendar."""
    cal = WorkCalendar(
        tz=SH,
        night_start=dt.time(22),
        night_end=dt.time(6),
        extra_rest_days=frozenset({dt.date(2026, 12, 1)}),
        extra_work_days=frozenset({dt.date(2026, 12, 6)}),
    )
    assert dh({"location_class": "other"}, TUE_10, 3, cal) == "1"
    assert dh({"location_class": "other"}, at(2026, 12, 6, 9), 3, cal) == "2"


def test_hot_work_daily_hours_exclude_nights_of_a_72h_permit() -> None:
    """Declared daytime hours keep a 3-day 二级 permit 二级; hours reaching 22:00 raise it."""
    start = at(2026, 12, 1, 8)
    assert dh({"location_class": "other", "daily_hours": "08:00-18:00"}, start, 72) == "2"
    assert dh({"location_class": "other", "daily_hours": "08:00-22:30"}, start, 72) == "1"


def test_hot_work_special_stays_special_when_raised() -> None:
    """特级 cannot go higher: night leaves it 特级."""
    assert (
        dh({"location_class": "other", "major_hazard_tank_dike": True}, at(2026, 12, 1, 23), 2)
        == "special"
    )


@pytest.mark.parametrize(("wind", "outdoor", "level"), [(4, True, "2"), (5, False, "2")])
def test_hot_work_wind_below_5_or_indoors_no_raise(wind: int, outdoor: bool, level: str) -> None:
    """Wind matters only from force 5 and outdoors (5.2.15)."""
    assert dh({"location_class": "other", "wind_force": wind, "outdoor": outdoor}) == level


def test_hot_work_wind_5_unavoidable_raises() -> None:
    """Force 5 outdoors, declared unavoidable: raised one level (5.2.15)."""
    assert dh({"location_class": "other", "wind_force": 5, "wind_unavoidable": True}) == "1"


@pytest.mark.parametrize(
    ("height", "factors", "level"),
    [
        (2.0, [], "I"),
        (5.0, [], "I"),
        (5.0, ["slippery"], "II"),
        (5.1, [], "II"),
        (5.1, ["poor_light"], "III"),
        (15.0, [], "II"),
        (15.1, [], "III"),
        (30.0, [], "III"),
        (30.1, [], "IV"),
        (30.1, ["disaster_rescue"], "IV"),
    ],
)
def test_height_level_bands_and_factors(height: float, factors: list[str], level: str) -> None:
    """Ⅰ 2-5, Ⅱ 5-15, Ⅲ 15-30, Ⅳ > 30 m; any objective factor raises one (8.1.2-8.1.3)."""
    assert height_level({"height_m": height, "factors": factors}).level == level


def test_height_below_2m_refused() -> None:
    """1.99 m is not work at height (3.8)."""
    with pytest.raises(RuleViolation):
        height_level({"height_m": 1.99})


@pytest.mark.parametrize(
    ("mass", "level", "required"),
    [
        (9.9, "3", False),
        (10.0, "3", True),
        (39.9, "3", True),
        (40.0, "2", True),
        (100.0, "2", True),
        (100.1, "1", True),
    ],
)
def test_lifting_level_by_mass(mass: float, level: str, required: bool) -> None:
    """一级 > 100 t, 二级 40-100 t, 三级 < 40 t (9.1); < 10 t permit optional (B.1 note 3)."""
    r = lifting_level({"mass_t": mass})
    assert (r.level, r.permit_required) == (level, required)


@pytest.mark.parametrize(("depth", "ok"), [(0.5, False), (0.51, True)])
def test_excavation_depth_boundary(depth: float, ok: bool) -> None:
    """Excavation is digging deeper than 0.5 m (3.11)."""
    if ok:
        assert compute_level(PermitType.DT, {"depth_m": depth}, TUE_10, TUE_10, CAL).level is None
    else:
        with pytest.raises(RuleViolation, match=r"0\.5"):
            compute_level(PermitType.DT, {"depth_m": depth}, TUE_10, TUE_10, CAL)


@pytest.mark.parametrize(
    ("ptype", "level", "fields", "hours", "clause"),
    [
        (PermitType.DH, "special", {}, 8, "5.1.5"),
        (PermitType.DH, "1", {}, 8, "5.1.5"),
        (PermitType.DH, "2", {}, 72, "5.1.5"),
        (PermitType.SX, None, {}, 24, "6.10"),
        (PermitType.GC, "IV", {}, 168, "8.2.11"),
        (PermitType.YD, None, {}, 360, "10.8"),
        (PermitType.YD, None, {"special_case_reason": "turnaround"}, 720, "10.8"),
        (PermitType.MB, None, {}, 24, "n/s: company policy"),
    ],
)
def test_validity_cap_per_type_and_level(
    ptype: PermitType, level: str | None, fields: dict[str, object], hours: float, clause: str
) -> None:
    """The validity caps of the standard, and the company's where it sets none."""
    cap, why = validity_cap(ptype, level, fields, PermitSettings())
    assert (cap, why) == (dt.timedelta(hours=hours), clause)
