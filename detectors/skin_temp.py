"""Skin temperature: smoothed level and rate of rise (company policy, SPEC.md §4)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._jit import helper, kernel
from detectors.base import Q_FRESH, Q_SKIN, BatchContext, Detector, StateField, drive, ms
from detectors.config import DetectorSettings
from detectors.models import AlarmKind, Severity, WorkerProfile
from detectors.policy import Rule, ewma_weight, step_rules


@helper
def skin_step(t, v, tau_ms, gap_ms, first_t, last_t, level, rate, w, w_step):  # type: ignore[no-untyped-def]
    """One good skin temperature ``v``: the smoothed level and its rate of rise (°C/min).
    Returns the new (first time, last time, level, rate) and the EWMA weight cache."""
    if last_t < 0 or t - last_t > gap_ms:
        if first_t < 0:
            first_t = t
        level = v  # (re)start after a gap: no rate across it
        rate = 0.0
    else:
        dt = t - last_t
        w, w_step = ewma_weight(dt, tau_ms, w_step, w)
        new = level + w * (v - level)
        inst = (new - level) / (dt / 60000.0)  # °C per minute
        rate += w * (inst - rate)
        level = new
    return first_t, t, level, rate, w, w_step


@kernel
def skin_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, skin, quality, tau_ms, warmup_ms, gap_ms,
    first_t, last_t, level, rate, sc, vals,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    """This detector alone (the pipeline runs `detectors.fused.fused_kernel` instead)."""
    n = idx.shape[0]
    cap = ev_slot.shape[0]
    w_step = -1  # ewma_weight's cache (scalars, see there)
    w = 0.0
    for k in range(start, n):
        i = idx[k]
        s = np.uint32(slot[i])
        q = quality[i]
        if not (q & Q_FRESH and q & Q_SKIN):
            continue
        if ev_n[0] + 1 > cap:
            return k
        t = ts[i]
        first_t[s], last_t[s], level[s], rate[s], w, w_step = skin_step(
            t, np.float64(skin[i]), tau_ms, gap_ms, first_t[s], last_t[s], level[s], rate[s],
            w, w_step,
        )  # fmt: skip
        sc[0] = level[s]
        vals[0] = level[s]
        sc[1] = rate[s] if t - first_t[s] >= warmup_ms else np.nan
        vals[1] = level[s]
        step_rules(
            s, t, sc, vals, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active,
            csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
        )  # fmt: skip
    return n


class SkinTempDetector(Detector):
    """Smoothed skin temperature level and rise rate → ``skin_temp_high`` (warning)."""

    name = "skin_temp"
    fields: ClassVar[dict[str, StateField]] = {
        "first_t": StateField(np.int64, -1),
        "last_t": StateField(np.int64, -1),
        "level": StateField(np.float64, np.nan),
        "rate": StateField(np.float64, 0.0),
    }
    scores_ = ("level", "rate")

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        return (
            Rule(AlarmKind.SKIN_TEMP_HIGH, Severity.WARNING, ">=", ms(s.skin_high_s), 0, "level"),
            Rule(AlarmKind.SKIN_TEMP_HIGH, Severity.WARNING, ">=", ms(s.skin_rate_s), 0, "rate"),
        )

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        s = self.settings
        return (
            [s.skin_high_c, s.skin_rate_c_min],
            [s.skin_high_c - s.skin_hysteresis_c, s.skin_rate_c_min / 2],
        )

    def fused_args(self) -> tuple[Any, ...]:
        s = self.settings
        params = (ms(s.skin_tau_s), ms(s.skin_warmup_s), ms(s.gap_s))
        st = self.a("first_t", "last_t", "level", "rate")
        return params, st, np.zeros(2), np.zeros(2), self.rules.args()

    def update(self, ctx: BatchContext) -> None:
        params, st, sc, vals, rules = self.fused_args()

        def call(start: int) -> int:
            return skin_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.skin, ctx.quality, *params, *st, sc, vals, *rules, *self.ev(ctx),
            )  # fmt: skip

        drive(len(ctx.idx), ctx.events, call)
