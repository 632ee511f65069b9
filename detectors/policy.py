"""The policy: scores → alarm levels, with persistence (hold) and hysteresis (off limit).

A rule is "score OP on-limit, held for ``hold`` ms" to become active and "not (score OP
off-limit), held for ``clear`` ms" to become inactive again. Several rules map to one alarm
kind; the kind's level is the highest severity among its active rules, and every change of
a kind's level is appended to the event buffer. Limits are per slot (so per worker); holds
are per rule. A NaN score decides nothing (the rule keeps its state).

The kernels here are called from inside the detectors' kernels (fused for speed), but they
are the only place where limits turn into decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from detectors._jit import helper
from detectors.models import KIND_CODE, AlarmKind, Severity

#: Comparison operators of a rule (score OP limit).
OP_GT: Final = 0
OP_GE: Final = 1
OP_LT: Final = 2
OP_LE: Final = 3
OPS: Final = {">": OP_GT, ">=": OP_GE, "<": OP_LT, "<=": OP_LE}


@helper
def compare(score: float, limit: float, op: int) -> bool:
    """``score OP limit`` (False for NaN)."""
    if op == 0:
        return score > limit
    if op == 1:
        return score >= limit
    if op == 2:
        return score < limit
    return score <= limit


@helper
def rules_idle(slot, hi, r_op, on, since, active):  # type: ignore[no-untyped-def]
    """True when `step_rules` would change nothing for any score ≤ ``hi`` (in every rule):
    each rule inactive, no hold running, of the "greater" kind, and ``hi`` not over its
    on-limit. Lets a kernel skip computing an exact score it can bound from above cheaply."""
    for r in range(r_op.shape[0]):
        if active[slot, r] != 0 or since[slot, r] >= 0 or r_op[r] > OP_GE:
            return False
        if compare(hi, on[slot, r], r_op[r]):
            return False
    return True


@helper
def rules_quiet(slot, sc, r_op, on, since, active):  # type: ignore[no-untyped-def]
    """True when `step_rules` with scores ``sc`` would change nothing: every rule inactive,
    no hold running, and no score meeting its on-limit. The state stays so until a step
    changes it, so a kernel that found it quiet may skip the steps of later observations
    with the same scores."""
    for r in range(sc.shape[0]):
        if active[slot, r] != 0 or since[slot, r] >= 0:
            return False
        if compare(sc[r], on[slot, r], r_op[r]):
            return False
    return True


@helper
def ewma_weight(step, tau, last_step, last_w):  # type: ignore[no-untyped-def]
    """``(1 − exp(−step/tau), step)``, reusing ``last_w`` when ``step == last_step``.

    Kernels keep ``(last_step, last_w)`` in two local scalars (start ``(-1, 0.0)``), so regular
    sampling costs one ``exp`` per kernel call, not one per sample. Scalars, not a cache
    array: an array passed to an inlined helper costs Numba reference-count updates per call.
    """
    if step == last_step:
        return last_w, last_step
    return 1.0 - math.exp(-step / tau), step


@helper
def emit(ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n, slot, kind, level, ts, value):  # type: ignore[no-untyped-def]
    """Append one level change to the event buffer (capacity is the caller's check)."""
    j = ev_n[0]
    ev_slot[j] = slot
    ev_kind[j] = kind
    ev_level[j] = level
    ev_ts[j] = ts
    ev_value[j] = value
    ev_n[0] = j + 1


@helper
def step_rules(  # type: ignore[no-untyped-def]
    slot, ts, sc, vals,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince,
    lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    """Advance every rule of one slot by one observation at ``ts``.

    ``sc`` holds one decision score per rule, ``vals`` the value each rule reports in its
    events. Emits at most one event per kind (its new level); returns how many it emitted.
    A kind's level is a function of its rules' active flags, so the per-kind pass runs only
    when a flag flipped (``lvl`` is only written here, so it always equals that function).
    """
    n_rules = sc.shape[0]
    # the slot's rows once (views: no copy, no allocation), not a 2-D index per access
    on_, off_, since_, active_, csince_ = (on[slot], off[slot], since[slot], active[slot],
                                           csince[slot])  # fmt: skip
    changed = False
    for r in range(n_rules):
        s = sc[r]
        if s != s:  # NaN: no decision
            continue
        if active_[r] == 0:
            if compare(s, on_[r], r_op[r]):
                if since_[r] < 0:
                    since_[r] = ts
                if ts - since_[r] >= r_hold[r]:
                    active_[r] = 1
                    since_[r] = -1
                    csince_[r] = -1
                    changed = True
            elif since_[r] >= 0:
                since_[r] = -1
        elif compare(s, off_[r], r_op[r]):
            if csince_[r] >= 0:
                csince_[r] = -1
        else:
            if csince_[r] < 0:
                csince_[r] = ts
            if ts - csince_[r] >= r_clear[r]:
                active_[r] = 0
                since_[r] = -1
                csince_[r] = -1
                changed = True
    emitted = 0
    if changed:  # levels derive from the active flags only: else nothing can have changed
        lvl_ = lvl[slot]
        for k in range(kind_codes.shape[0]):
            new = 0
            value = np.nan
            first = np.nan
            for r in range(n_rules):
                if r_kind[r] != k:
                    continue
                if first != first:
                    first = vals[r]
                if active_[r] != 0 and r_sev[r] > new:
                    new = r_sev[r]
                    value = vals[r]
            if new != lvl_[k]:
                if new == 0:
                    value = first
                emit(
                    ev_slot,
                    ev_kind,
                    ev_level,
                    ev_ts,
                    ev_value,
                    ev_n,
                    slot,
                    kind_codes[k],
                    new,
                    ts,
                    value,
                )
                lvl_[k] = new
                emitted += 1
    return emitted


@dataclass(frozen=True, slots=True)
class Rule:
    """One persistence/hysteresis rule of a detector.

    Attributes:
        kind: the alarm kind it drives.
        severity: the level it sets while active.
        op: comparison of score against the limit: ``>``, ``>=``, ``<`` or ``<=``.
        hold_ms: how long the on-condition must hold before the rule becomes active.
        clear_ms: how long the off-condition must hold before it becomes inactive.
        score: name of the score it reads (for documentation and `scores()`).
    """

    kind: AlarmKind
    severity: Severity
    op: str
    hold_ms: int
    clear_ms: int
    score: str


class RuleTable:
    """The rules of one detector with their per-slot limits and per-slot state arrays."""

    STATE = ("since", "active", "csince", "lvl", "on", "off")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.kinds: tuple[AlarmKind, ...] = tuple(dict.fromkeys(r.kind for r in rules))
        self.kind_codes = np.array([KIND_CODE[k] for k in self.kinds], dtype=np.int8)
        self.r_kind = np.array([self.kinds.index(r.kind) for r in rules], dtype=np.int8)
        self.r_sev = np.array([int(r.severity) for r in rules], dtype=np.int8)
        self.r_op = np.array([OPS[r.op] for r in rules], dtype=np.int8)
        self.r_hold = np.array([r.hold_ms for r in rules], dtype=np.int64)
        self.r_clear = np.array([r.clear_ms for r in rules], dtype=np.int64)
        self.default_on = np.full(len(rules), np.inf)
        self.default_off = np.full(len(rules), np.inf)
        self.capacity = 0
        self.grow(0)

    @property
    def n_rules(self) -> int:
        return len(self.rules)

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` slots; new slots get the default limits and no state."""
        old = self.capacity
        r, k = len(self.rules), len(self.kinds)
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "since": np.full((capacity, r), -1, dtype=np.int64),
            "active": np.zeros((capacity, r), dtype=np.int8),
            "csince": np.full((capacity, r), -1, dtype=np.int64),
            "lvl": np.zeros((capacity, k), dtype=np.int8),
            "on": np.tile(self.default_on, (capacity, 1)),
            "off": np.tile(self.default_off, (capacity, 1)),
        }
        if old:
            for name, arr in arrays.items():
                arr[:old] = getattr(self, name)[:old]
        for name, arr in arrays.items():
            setattr(self, name, arr)
        self.capacity = capacity

    def set_defaults(self, on: npt.ArrayLike, off: npt.ArrayLike) -> None:
        """Limits of slots with no profile of their own (also applied to existing ones)."""
        self.default_on = np.asarray(on, dtype=np.float64).copy()
        self.default_off = np.asarray(off, dtype=np.float64).copy()

    def set_limits(self, slot: int, on: npt.ArrayLike, off: npt.ArrayLike) -> None:
        self.on[slot] = on  # type: ignore[attr-defined]
        self.off[slot] = off  # type: ignore[attr-defined]

    def args(self) -> tuple[npt.NDArray[np.generic], ...]:
        """The arrays in `step_rules` order (after the scores)."""
        return (
            self.r_kind, self.r_sev, self.r_op, self.r_hold, self.r_clear,
            self.on, self.off, self.since, self.active, self.csince,  # type: ignore[attr-defined]
            self.lvl, self.kind_codes,  # type: ignore[attr-defined]
        )  # fmt: skip

    def state(self) -> dict[str, npt.NDArray[np.generic]]:
        return {name: getattr(self, name) for name in self.STATE}

    def load(self, state: dict[str, npt.NDArray[np.generic]]) -> None:
        for name in self.STATE:
            getattr(self, name)[...] = state[name]

    def levels(self) -> dict[AlarmKind, npt.NDArray[np.int8]]:
        """Current level per kind for every slot."""
        return {k: self.lvl[:, i] for i, k in enumerate(self.kinds)}  # type: ignore[attr-defined]
