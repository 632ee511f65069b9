"""The permit lifecycle as an explicit transition table; an edge not in it is refused.

The same table is installed in the database (migration 0003, ``permit_transitions``) and a
trigger refuses any other state change, so raw SQL cannot bypass it either.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from permits.errors import InvalidTransition
from permits.models import PermitState

S = PermitState

#: from-state → the states it may move to.
TRANSITIONS: Mapping[PermitState, frozenset[PermitState]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.CANCELLED}),
    # first signature → in review; a one-step route goes straight to approved; reject → draft
    S.SUBMITTED: frozenset({S.IN_REVIEW, S.APPROVED, S.DRAFT, S.CANCELLED}),
    S.IN_REVIEW: frozenset({S.APPROVED, S.DRAFT, S.CANCELLED}),
    # activation needs the pre-start checks; the validity clock may run out before start
    S.APPROVED: frozenset({S.ACTIVE, S.CANCELLED, S.EXPIRED, S.TERMINATED}),
    S.ACTIVE: frozenset({S.SUSPENDED, S.COMPLETED, S.EXPIRED, S.TERMINATED}),
    S.SUSPENDED: frozenset({S.ACTIVE, S.EXPIRED, S.TERMINATED}),
    # completion acceptance (4.15) then closure; an expired or terminated permit still needs
    # its site restored and signed off before it is closed
    S.COMPLETED: frozenset({S.CLOSED}),
    S.EXPIRED: frozenset({S.CLOSED}),
    S.TERMINATED: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}


def allowed(from_state: PermitState, to_state: PermitState) -> bool:
    return to_state in TRANSITIONS[from_state]


def check(permit_id: uuid.UUID | str, from_state: PermitState, to_state: PermitState) -> None:
    """Raise `InvalidTransition` unless ``from_state → to_state`` is an edge of the table."""
    if not allowed(from_state, to_state):
        raise InvalidTransition(permit_id, from_state, to_state)


def edges() -> list[tuple[str, str]]:
    """Every allowed edge as (from, to) values, sorted (installed in the database)."""
    return sorted((str(a), str(b)) for a, targets in TRANSITIONS.items() for b in targets)
