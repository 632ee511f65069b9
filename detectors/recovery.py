"""Heart-rate recovery: the smoothed HR 1 min after the start of a rest that follows a
period of effort (ACGIH: > 120 bpm is poor recovery, SPEC.md §4). Rest and effort are read
from the motion channel; without motion data there is no recovery check."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._jit import helper, kernel
from detectors.base import (
    Q_FRESH,
    Q_HR,
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
from detectors.policy import Rule, ewma_weight, step_rules

#: Time constant of the smoothed motion that separates rest from activity.
MOTION_TAU_MS = 5000


@helper
def recovery_step(  # type: ignore[no-untyped-def]
    t, q, h, mo, rest_g, active_min_ms, after_ms, hr_tau_ms, gap_ms, st, wh, wh_step, wm, wm_step,
):  # fmt: skip
    """One fresh sample (quality bits ``q``, HR ``h``, motion ``mo``). ``st`` is the slot's
    (hs, hs_t, ms, ms_t, active_since, rest_start, rec); returns the new ``st`` and the
    EWMA weight caches (HR, motion)."""
    hs, hs_t, ms_, ms_t, active_since, rest_start, rec = st
    if q & Q_HR:
        if hs_t < 0 or t - hs_t > gap_ms:
            hs = np.float64(h)
        else:
            wh, wh_step = ewma_weight(t - hs_t, hr_tau_ms, wh_step, wh)
            hs += wh * (h - hs)
        hs_t = t
    if q & Q_MOTION:
        if ms_t < 0 or t - ms_t > gap_ms:
            ms_ = np.float64(mo)
            active_since = -1
            rest_start = -1
        else:
            wm, wm_step = ewma_weight(t - ms_t, MOTION_TAU_MS, wm_step, wm)
            ms_ += wm * (mo - ms_)
        ms_t = t
        if ms_ >= rest_g:
            if active_since < 0:
                active_since = t
            rest_start = -1
        else:
            if active_since >= 0 and t - active_since >= active_min_ms:
                rest_start = t
            active_since = -1
    fresh_hr = hs_t >= 0 and t - hs_t <= gap_ms
    if rest_start >= 0 and t - rest_start >= after_ms and fresh_hr:
        rec = hs  # the check: HR one minute into the rest
        rest_start = -1
    elif rec == rec and fresh_hr:
        rec = min(rec, hs)  # recovering: follow the HR down
    return (hs, hs_t, ms_, ms_t, active_since, rest_start, rec), wh, wh_step, wm, wm_step


@kernel
def recovery_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, hr, motion, quality,
    rest_g, active_min_ms, after_ms, hr_tau_ms, gap_ms,
    hs, hs_t, ms_, ms_t, active_since, rest_start, rec, sc,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    """This detector alone (the pipeline runs `detectors.fused.fused_kernel` instead)."""
    n = idx.shape[0]
    cap = ev_slot.shape[0]
    wh_step = -1  # ewma_weight's caches (scalars, see there), HR and motion
    wh = 0.0
    wm_step = -1
    wm = 0.0
    for k in range(start, n):
        i = idx[k]
        s = np.uint32(slot[i])
        q = quality[i]
        if not q & Q_FRESH:
            continue
        if ev_n[0] + 1 > cap:
            return k
        t = ts[i]
        st = (hs[s], hs_t[s], ms_[s], ms_t[s], active_since[s], rest_start[s], rec[s])
        st, wh, wh_step, wm, wm_step = recovery_step(
            t, q, hr[i], motion[i], rest_g, active_min_ms, after_ms, hr_tau_ms, gap_ms, st,
            wh, wh_step, wm, wm_step,
        )  # fmt: skip
        hs[s], hs_t[s], ms_[s], ms_t[s], active_since[s], rest_start[s], rec[s] = st
        sc[0] = st[6]
        step_rules(
            s, t, sc, sc, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active,
            csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
        )  # fmt: skip
    return n


class RecoveryDetector(Detector):
    """``hr_recovery_poor`` (warning) when HR 1 min into a rest after effort is > 120 bpm."""

    name = "recovery"
    fields: ClassVar[dict[str, StateField]] = {
        "hs": StateField(np.float64, np.nan),
        "hs_t": StateField(np.int64, -1),
        "ms": StateField(np.float64, np.nan),
        "ms_t": StateField(np.int64, -1),
        "active_since": StateField(np.int64, -1),
        "rest_start": StateField(np.int64, -1),
        "rec": StateField(np.float64, np.nan),
    }
    scores_ = ("rec", "hs")

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        return (Rule(AlarmKind.HR_RECOVERY_POOR, Severity.WARNING, ">", 0, 0, "rec"),)

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        s = self.settings
        return [s.recovery_limit_bpm], [s.recovery_clear_bpm]

    def fused_args(self) -> tuple[Any, ...]:
        s = self.settings
        params = (f32(s.rest_motion_g), ms(s.active_min_s), ms(s.recovery_after_s),
                  ms(s.hr_smooth_s), ms(s.gap_s))  # fmt: skip
        st = self.a("hs", "hs_t", "ms", "ms_t", "active_since", "rest_start", "rec")
        return params, st, np.zeros(1), self.rules.args()

    def update(self, ctx: BatchContext) -> None:
        params, st, sc, rules = self.fused_args()

        def call(start: int) -> int:
            return recovery_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.hr, ctx.motion, ctx.quality, *params, *st, sc, *rules, *self.ev(ctx),
            )  # fmt: skip

        drive(len(ctx.idx), ctx.events, call)
