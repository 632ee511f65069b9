"""Gas pass rules (5.3, 6.3-6.5), distances, approval routes (B.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from permits import gas, geo, routes
from permits.config import PermitSettings
from permits.models import Actor, GasReading, GeoPoint, PermitType, StepKind

HOT = gas.rule_for(PermitType.DH, {})
SPACE = gas.rule_for(PermitType.SX, {})


def rules_of(o2: float | None, readings: list[GasReading], rule: gas.GasRule) -> list[str]:
    return [f.rule for f in gas.evaluate(o2, readings, rule)]


@pytest.mark.parametrize(
    ("lel", "value", "ok"),
    [
        (4.0, 0.5, True),
        (4.0, 0.51, False),
        (3.99, 0.2, True),
        (3.99, 0.21, False),
        (5.0, 0.5, True),
    ],
)
def test_gas_flammable_limit_by_lel_class(lel: float, value: float, ok: bool) -> None:
    """LEL ≥ 4 %: ≤ 0.5 % vol; LEL < 4 %: ≤ 0.2 % vol (5.3)."""
    r = [GasReading("x", value, "%vol", lel_pct=lel)]
    assert (rules_of(None, r, HOT) == []) is ok


def test_gas_flammable_in_percent_lel_converted() -> None:
    """A reading in % LEL is converted to % vol: 12 % LEL of methane = 0.6 % vol > 0.5."""
    assert rules_of(None, [GasReading("methane", 12, "%LEL")], HOT) == ["gas.flammable"]
    assert rules_of(None, [GasReading("methane", 10, "%LEL")], HOT) == []


def test_gas_unknown_flammable_judged_by_stricter_limit() -> None:
    """No LEL known: the 0.2 % vol limit applies."""
    assert rules_of(None, [GasReading("mystery", 0.3, "%vol")], HOT) == ["gas.flammable"]


def test_gas_hot_work_needs_a_flammable_reading() -> None:
    """A hot-work analysis without a flammable measurement fails."""
    assert rules_of(20.9, [], HOT) == ["gas.flammable_missing"]


@pytest.mark.parametrize(
    ("o2", "enriched", "ok"),
    [
        (19.5, False, True),
        (19.4, False, False),
        (21.0, False, True),
        (21.1, False, False),
        (23.5, True, True),
        (23.6, True, False),
        (None, False, False),
    ],
)
def test_gas_confined_space_oxygen_range(o2: float | None, enriched: bool, ok: bool) -> None:
    """Confined space O2 19.5-21 %, ≤ 23.5 % where enriched (6.3-6.5)."""
    rule = gas.rule_for(PermitType.SX, {"oxygen_enriched": enriched})
    assert (rules_of(o2, [GasReading("methane", 0, "%vol")], rule) == []) is ok


def test_gas_hot_work_oxygen_service_max_23_5() -> None:
    """Hot work in oxygen service: O2 ≤ 23.5 %."""
    rule = gas.rule_for(PermitType.DH, {"oxygen_service": True})
    r = [GasReading("methane", 0, "%vol")]
    assert rules_of(23.5, r, rule) == []
    assert rules_of(23.6, r, rule) == ["gas.o2_enriched"]


@pytest.mark.parametrize(
    ("substance", "value", "unit", "ok"),
    [
        ("h2s", 10.0, "mg/m3", True),
        ("h2s", 10.1, "mg/m3", False),
        ("h2s", 7.0, "ppm", True),  # 7 ppm = 9.76 mg/m³
        ("h2s", 7.2, "ppm", False),  # 10.04 mg/m³
        ("co", 20.0, "mg/m3", True),
        ("co", 20.5, "mg/m3", False),
        ("benzene", 6.0, "mg/m3", True),
        ("benzene", 6.1, "mg/m3", False),
    ],
)
def test_gas_toxic_against_gbz_2_1(substance: str, value: float, unit: str, ok: bool) -> None:
    """Toxics against GBZ 2.1 (MAC, else PC-TWA), ppm converted at 24.45 L/mol."""
    r = [GasReading("methane", 0, "%vol"), GasReading(substance, value, unit)]
    assert (rules_of(20.9, r, SPACE) == []) is ok


def test_gas_unknown_toxic_in_confined_space_fails_safe() -> None:
    """A toxic with no limit on file cannot pass."""
    r = [GasReading("methane", 0, "%vol"), GasReading("unobtainium", 0.1, "mg/m3")]
    assert rules_of(20.9, r, SPACE) == ["gas.toxic_unknown"]


@given(
    lat=st.floats(-80, 80),
    lon=st.floats(-179, 179),
    metres=st.floats(0.5, 5000),
    bearing=st.floats(0, 360),
)
def test_geo_offset_then_distance_roundtrip(
    lat: float, lon: float, metres: float, bearing: float
) -> None:
    """distance(offset(p, d)) == d within a millimetre."""
    p = GeoPoint(lat, lon)
    assert abs(geo.distance_m(p, geo.offset(p, metres=metres, bearing_deg=bearing)) - metres) < 1e-3


def test_geo_known_distance() -> None:
    """One degree of latitude is about 111.2 km on the mean sphere."""
    assert round(geo.distance_m(GeoPoint(0, 0), GeoPoint(1, 0))) == 111195


S = PermitSettings()


@pytest.mark.parametrize(
    ("ptype", "level", "final"),
    [
        (PermitType.DH, "special", "senior_leader"),
        (PermitType.DH, "1", "safety_dept"),
        (PermitType.DH, "2", "local_unit"),
        (PermitType.SX, None, "local_unit"),
        (PermitType.MB, None, "local_unit"),
        (PermitType.GC, "I", "local_unit"),
        (PermitType.GC, "II", "specialist_dept"),
        (PermitType.GC, "III", "specialist_dept"),
        (PermitType.GC, "IV", "plant_manager"),
        (PermitType.DZ, "1", "plant_manager"),
        (PermitType.DZ, "2", "specialist_dept"),
        (PermitType.DZ, "3", "specialist_dept"),
        (PermitType.YD, None, "power_unit"),
        (PermitType.DT, None, "specialist_dept"),
        (PermitType.DL, None, "specialist_dept"),
    ],
)
def test_route_final_approver_per_type_and_level(
    ptype: PermitType, level: str | None, final: str
) -> None:
    """The final approver is the standard's (B.1)."""
    route = routes.route_for(ptype, level, S)
    assert (route[-1].role, route[-1].kind) == (final, StepKind.APPROVE)


def test_route_road_breaking_countersigns_fire_and_safety_first() -> None:
    """Road breaking: fire and safety countersign, in any order, before approval."""
    route = routes.route_for(PermitType.DL, None, S)
    assert [(s.role, s.group) for s in route] == [
        ("cs_fire", 1),
        ("cs_safety", 1),
        ("specialist_dept", 2),
    ]
    assert {s.role for s in routes.pending(route, {2})} == {"cs_fire"}
    assert {s.role for s in routes.pending(route, {1, 2})} == {"specialist_dept"}


def test_route_company_review_added_before_final() -> None:
    """A company review step goes before the standard's final approver."""
    s = PermitSettings(extra_reviews={"DH:2": ["safety_dept"]})
    assert [x.role for x in routes.route_for(PermitType.DH, "2", s)] == [
        "safety_dept",
        "local_unit",
    ]


def test_route_role_map_onto_org_chart() -> None:
    """A company role can sign as the standard's role (B.1 note 1)."""
    s = PermitSettings(role_map={"safety_dept": ["HSE-manager"]})
    hse = Actor("u", frozenset({"HSE-manager"}))
    assert routes.holds(hse, "safety_dept", s)
    assert not routes.holds(Actor("v", frozenset({"safety_dept"})), "safety_dept", s)
