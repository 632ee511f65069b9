"""Approval routes per type and level (GB 30871-2022 B.1) and the role mapping onto a
company's org chart (B.1 note 1).

The final approver of each route is the standard's and cannot be changed; a company may put
its own review steps before it (`PermitSettings.extra_reviews`). Countersigns (会签) of one
group may be signed in any order; groups and steps are otherwise signed in sequence.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from permits.config import PermitSettings
from permits.models import Actor, PermitType, Role, StepKind


@dataclass(frozen=True, slots=True)
class Step:
    """One signature of a route: ``no`` is 1-based; steps of one ``group`` are unordered."""

    no: int
    role: str
    kind: StepKind
    group: int


_R = Role
#: (type, level) → (countersign roles, review roles, final approver). B.1 and ch. 11-12.
DEFAULT_ROUTES: Mapping[
    tuple[PermitType, str | None], tuple[tuple[str, ...], tuple[str, ...], str]
] = {
    (PermitType.DH, "special"): ((), (_R.LOCAL_UNIT, _R.SAFETY_DEPT), _R.SENIOR_LEADER),
    (PermitType.DH, "1"): ((), (_R.LOCAL_UNIT,), _R.SAFETY_DEPT),
    (PermitType.DH, "2"): ((), (), _R.LOCAL_UNIT),
    (PermitType.SX, None): ((), (), _R.LOCAL_UNIT),
    (PermitType.MB, None): ((), (), _R.LOCAL_UNIT),
    (PermitType.GC, "I"): ((), (), _R.LOCAL_UNIT),
    (PermitType.GC, "II"): ((), (_R.LOCAL_UNIT,), _R.SPECIALIST_DEPT),
    (PermitType.GC, "III"): ((), (_R.LOCAL_UNIT,), _R.SPECIALIST_DEPT),
    (PermitType.GC, "IV"): ((), (_R.LOCAL_UNIT, _R.SPECIALIST_DEPT), _R.PLANT_MANAGER),
    (PermitType.DZ, "1"): ((), (_R.SPECIALIST_DEPT,), _R.PLANT_MANAGER),
    (PermitType.DZ, "2"): ((), (), _R.SPECIALIST_DEPT),
    (PermitType.DZ, "3"): ((), (), _R.SPECIALIST_DEPT),
    (PermitType.YD, None): ((), (), _R.POWER_UNIT),
    (PermitType.DT, None): (
        (
            _R.CS_WATER,
            _R.CS_POWER,
            _R.CS_STEAM,
            _R.CS_PROCESS,
            _R.CS_EQUIPMENT,
            _R.CS_FIRE,
            _R.CS_SAFETY,
        ),
        (),
        _R.SPECIALIST_DEPT,
    ),
    (PermitType.DL, None): ((_R.CS_FIRE, _R.CS_SAFETY), (), _R.SPECIALIST_DEPT),
}


def route_for(ptype: PermitType, level: str | None, settings: PermitSettings) -> tuple[Step, ...]:
    """The steps a permit of this type and level must collect, in order."""
    countersigns, reviews, final = DEFAULT_ROUTES[(ptype, level)]
    key = f"{ptype}:{level}" if level else str(ptype)
    extra = [r for r in settings.extra_reviews.get(key, settings.extra_reviews.get(str(ptype), []))]
    steps: list[Step] = []
    group = 0
    if countersigns:
        group += 1
        for role in countersigns:
            steps.append(Step(len(steps) + 1, str(role), StepKind.COUNTERSIGN, group))
    for role in [*reviews, *[r for r in extra if r not in reviews and r != final]]:
        group += 1
        steps.append(Step(len(steps) + 1, str(role), StepKind.REVIEW, group))
    steps.append(Step(len(steps) + 1, str(final), StepKind.APPROVE, group + 1))
    return tuple(steps)


def pending(route: Sequence[Step], signed: Collection[int]) -> tuple[Step, ...]:
    """The steps that may be signed now: the unsigned steps of the first open group."""
    open_steps = [s for s in route if s.no not in signed]
    if not open_steps:
        return ()
    group = open_steps[0].group
    return tuple(s for s in open_steps if s.group == group)


def company_roles(role: str, settings: PermitSettings) -> frozenset[str]:
    """The company roles that may act as the standard's ``role``."""
    return frozenset(settings.role_map.get(str(role), [str(role)]))


def holds(actor: Actor, role: str, settings: PermitSettings) -> bool:
    """Whether ``actor`` may act as the standard's ``role`` (admins may not approve)."""
    return bool(actor.roles & company_roles(role, settings))


def holds_any(actor: Actor, roles: Collection[str], settings: PermitSettings) -> bool:
    return any(holds(actor, r, settings) for r in roles)
