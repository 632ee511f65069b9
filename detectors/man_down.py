"""Man-down: SOS flag, fall flag (escalated when no motion follows), and no motion for N s
with pre-warnings at N − 30 s and N − 10 s (Blackline / SlateSafety / Apple patterns)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._jit import helper, kernel
from detectors.base import (
    FLAG_FALL,
    FLAG_SOS,
    Q_FRESH,
    Q_MOTION,
    BatchContext,
    Detector,
    StateField,
    drive,
    f32,
    ms,
)
from detectors.config import DetectorSettings
from detectors.models import AlarmKind, Severity, WorkerProfile
from detectors.policy import Rule, step_rules


@helper
def man_down_step(  # type: ignore[no-untyped-def]
    t, moving, mo, f, still_g, gap_ms, fall_still_ms, sos_latch_ms, fall_latch_ms,
    sos_last, fall_start, fall_last, still_since, motion_t,
):  # fmt: skip
    """One fresh sample (``moving``: it has a good motion value ``mo``; ``f`` its flags).
    Returns the new (sos_last, fall_start, fall_last, still_since, motion_t) and the
    scores (still seconds, SOS 0/1, fall 0/1/2)."""
    if moving:
        if mo < still_g:
            if still_since < 0 or t - motion_t > gap_ms:
                still_since = t
        else:
            still_since = -1
        motion_t = t
    elif motion_t >= 0 and t - motion_t > gap_ms:
        still_since = -1  # no motion data for too long: no opinion
    still = (t - still_since) / 1000.0 if still_since >= 0 else 0.0
    if f & FLAG_SOS:
        sos_last = t
    sos = 1.0 if sos_last >= 0 and t - sos_last <= sos_latch_ms else 0.0
    if f & FLAG_FALL:
        if fall_start < 0:
            fall_start = t
        fall_last = t
    fall = 0.0
    if fall_start >= 0:
        if t - fall_last >= fall_latch_ms and still_since < 0:
            fall_start = -1  # moving again after the latch: episode over
        else:
            fall = 1.0
            if still_since >= 0 and t - max(still_since, fall_start) >= fall_still_ms:
                fall = 2.0
    return sos_last, fall_start, fall_last, still_since, motion_t, still, sos, fall


@helper
def man_down_scores(sc, still, sos, fall):  # type: ignore[no-untyped-def]
    """The six rules' scores: SOS, fall (warning, critical), no motion (three levels)."""
    sc[0] = sos
    sc[1] = fall
    sc[2] = fall
    sc[3] = still
    sc[4] = still
    sc[5] = still


@kernel
def man_down_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, motion, flags, quality,
    still_g, gap_ms, fall_still_ms, sos_latch_ms, fall_latch_ms,
    sos_last, fall_start, fall_last, still_since, motion_t, still_s, sc,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    """This detector alone (the pipeline runs `detectors.fused.fused_kernel` instead)."""
    n = idx.shape[0]
    cap = ev_slot.shape[0]
    for k in range(start, n):
        i = idx[k]
        s = np.uint32(slot[i])
        q = quality[i]
        if not q & Q_FRESH:
            continue
        if ev_n[0] + 3 > cap:
            return k
        t = ts[i]
        a, b, c, d, e, still, sos, fall = man_down_step(
            t, q & Q_MOTION, motion[i], flags[i], still_g, gap_ms, fall_still_ms, sos_latch_ms,
            fall_latch_ms, sos_last[s], fall_start[s], fall_last[s], still_since[s], motion_t[s],
        )  # fmt: skip
        sos_last[s], fall_start[s], fall_last[s], still_since[s], motion_t[s] = a, b, c, d, e
        still_s[s] = still
        man_down_scores(sc, still, sos, fall)
        step_rules(
            s, t, sc, sc, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active,
            csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
        )  # fmt: skip
    return n


class ManDownDetector(Detector):
    """``sos`` (critical), ``fall`` (warning → critical without motion), ``no_motion``
    (notice at N − 30 s, warning at N − 10 s, critical at N s)."""

    name = "man_down"
    fields: ClassVar[dict[str, StateField]] = {
        "sos_last": StateField(np.int64, -1),
        "fall_start": StateField(np.int64, -1),
        "fall_last": StateField(np.int64, -1),
        "still_since": StateField(np.int64, -1),
        "motion_t": StateField(np.int64, -1),
        "still_s": StateField(np.float64, 0.0),
    }
    scores_ = ("still_s",)

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        return (
            Rule(AlarmKind.SOS, Severity.CRITICAL, ">=", 0, 0, "sos"),
            Rule(AlarmKind.FALL, Severity.WARNING, ">=", 0, 0, "fall"),
            Rule(AlarmKind.FALL, Severity.CRITICAL, ">=", 0, 0, "fall"),
            Rule(AlarmKind.NO_MOTION, Severity.NOTICE, ">=", 0, 0, "still_s"),
            Rule(AlarmKind.NO_MOTION, Severity.WARNING, ">=", 0, 0, "still_s"),
            Rule(AlarmKind.NO_MOTION, Severity.CRITICAL, ">=", 0, 0, "still_s"),
        )

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        s = self.settings
        n = s.no_motion_s
        a, b = s.no_motion_prewarn_s
        # Clearing: the flag score back to 0, or any motion (still time back to 0).
        return [1.0, 1.0, 2.0, n - a, n - b, n], [0.5, 0.5, 1.5, 1e-9, 1e-9, 1e-9]

    def fused_args(self) -> tuple[Any, ...]:
        s = self.settings
        params = (f32(s.still_motion_g), ms(s.motion_gap_s), ms(s.fall_still_s),
                  ms(s.sos_latch_s), ms(s.fall_latch_s))  # fmt: skip
        st = self.a("sos_last", "fall_start", "fall_last", "still_since", "motion_t", "still_s")
        return params, st, np.zeros(6), self.rules.args()

    def update(self, ctx: BatchContext) -> None:
        params, st, sc, rules = self.fused_args()

        def call(start: int) -> int:
            return man_down_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.motion, ctx.flags, ctx.quality, *params, *st, sc, *rules, *self.ev(ctx),
            )  # fmt: skip

        drive(len(ctx.idx), ctx.events, call)
