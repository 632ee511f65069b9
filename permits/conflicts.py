"""Simultaneous operations: the distance and same-object rules of GB 30871-2022 checked
between a permit and the other live permits of its site (at approval and activation).

Activities a permit declares (``activities``: venting, discharge, painting, ...) are what the
distance rules of 5.2.8-5.2.9 look at; same-object rules look at the type fields (pipe id,
confined space id, tank dike id, fall line).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from permits.config import PermitSettings
from permits.errors import finding
from permits.geo import distance_m
from permits.models import Finding, Permit, PermitType

#: 5.2.9: activity → (rule, least distance from hot work, metres).
HOT_WORK_RADII: dict[str, tuple[str, float]] = {
    "venting_flammable_gas": ("conflict.hot_work_venting", 30.0),
    "discharging_flammable_liquid": ("conflict.hot_work_discharge", 15.0),
    "solvent_cleaning": ("conflict.hot_work_painting", 10.0),
    "painting": ("conflict.hot_work_painting", 10.0),
    "dust_sweeping": ("conflict.hot_work_painting", 10.0),
}
BLINDING_RADIUS_M = 30.0  # 7.6


def _d(a: Permit, b: Permit) -> float:
    return round(distance_m(a.location, b.location), 1)


def _hot_work_vs(hot: Permit, other: Permit) -> Iterable[Finding]:
    d = _d(hot, other)
    for act in sorted(set(other.activities)):
        if act in HOT_WORK_RADII:
            rule, radius = HOT_WORK_RADII[act]
            if d < radius:
                yield finding(rule, other=other.number, distance_m=d)
    dike = hot.fields.get("tank_dike_id")
    same_dike = bool(dike) and other.fields.get("tank_dike_id") == dike
    if same_dike and {"draining", "sampling"} & set(other.activities):
        yield finding("conflict.hot_work_tank_dike", other=other.number, dike=dike)
    if other.type is PermitType.MB and d < BLINDING_RADIUS_M:
        in_area = hot.fields.get("location_class") == "fire_explosion_area" or other.fields.get(
            "in_fire_explosion_area", True
        )
        if in_area:
            yield finding("conflict.hot_work_blinding", other=other.number, distance_m=d)
    space = hot.fields.get("confined_space_id")
    same_space = space in (other.fields.get("space_id"), other.fields.get("confined_space_id"))
    if space and "painting" in other.activities and same_space:
        yield finding("conflict.confined_space_painting", other=other.number, space=space)


def _height(p: Permit) -> float:
    return float(p.fields.get("height_m") or 0.0) if p.type is PermitType.GC else 0.0


def _pair(a: Permit, b: Permit, settings: PermitSettings) -> Iterable[Finding]:
    """Rules that make ``a`` and ``b`` unable to run together, seen from ``a``."""
    if a.type is PermitType.DH:
        yield from _hot_work_vs(a, b)
    if a.type is PermitType.MB and b.type is PermitType.MB:
        pipe = a.fields.get("pipe_id")
        if pipe and pipe == b.fields.get("pipe_id"):
            yield finding("conflict.blinding_same_pipe", other=b.number, pipe=pipe)
    if a.type is PermitType.GC:
        tag = a.fields.get("fall_line")
        same_tag = bool(tag) and tag == b.fields.get("fall_line")
        d = _d(a, b)
        stacked = d <= settings.fall_line_radius_m and abs(_height(a) - _height(b)) >= 1.0
        if same_tag or stacked:
            yield finding("conflict.fall_line", other=b.number, distance_m=d)


def check(subject: Permit, others: Sequence[Permit], settings: PermitSettings) -> list[Finding]:
    """Every conflict between ``subject`` and the live ``others`` (both directions)."""
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    for other in others:
        if other.permit_id == subject.permit_id:
            continue
        for f in (*_pair(subject, other, settings), *_pair(other, subject, settings)):
            key = (f.rule, other.number)
            if key not in seen:
                seen.add(key)
                out.append(f if f.params.get("other") == other.number else _name(f, other))
    return out


def _name(f: Finding, other: Permit) -> Finding:
    # A rule seen from the other permit names the subject; name the other one instead.
    return finding(f.rule, **{**f.params, "other": other.number})


def simops(subject: Permit, others: Sequence[Permit], settings: PermitSettings) -> Finding | None:
    """4.7: live permits within the SIMOPS radius need a named coordinator on the subject."""
    near = [
        o.number
        for o in others
        if o.permit_id != subject.permit_id
        and distance_m(subject.location, o.location) <= settings.simops_radius_m
        and o.permit_id != subject.host_permit_id
        and o.host_permit_id != subject.permit_id
    ]
    if near and not subject.coordinator:
        return finding(
            "simops.coordinator", distance_m=settings.simops_radius_m, others=", ".join(near)
        )
    return None
