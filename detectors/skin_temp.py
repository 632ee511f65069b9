"""Skin temperature: smoothed level and rate of rise (company policy, SPEC.md §4)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors._jit import kernel
from detectors.base import Q_FRESH, Q_SKIN, BatchContext, Detector, StateField, drive, ms
from detectors.config import DetectorSettings
from detectors.models import AlarmKind, Severity, WorkerProfile
from detectors.policy import Rule, ewma_weight, step_rules


@kernel
def skin_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, skin, quality, tau_ms, warmup_ms, gap_ms,
    first_t, last_t, level, rate, sc, vals,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    n = idx.shape[0]
    cap = ev_slot.shape[0]
    w_step = -1  # ewma_weight's cache (scalars, see there)
    w = 0.0
    for k in range(start, n):
        i = idx[k]
        s = slot[i]
        q = quality[i]
        if not (q & Q_FRESH and q & Q_SKIN):
            continue
        if ev_n[0] + 1 > cap:
            return k
        t = ts[i]
        v = np.float64(skin[i])
        if last_t[s] < 0 or t - last_t[s] > gap_ms:
            if first_t[s] < 0:
                first_t[s] = t
            level[s] = v  # (re)start after a gap: no rate across it
            rate[s] = 0.0
        else:
            dt = t - last_t[s]
            w, w_step = ewma_weight(dt, tau_ms, w_step, w)
            new = level[s] + w * (v - level[s])
            inst = (new - level[s]) / (dt / 60000.0)  # °C per minute
            rate[s] += w * (inst - rate[s])
            level[s] = new
        last_t[s] = t
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

    def update(self, ctx: BatchContext) -> None:
        s = self.settings
        st = self.a("first_t", "last_t", "level", "rate")
        sc, vals = np.zeros(2), np.zeros(2)

        def call(start: int) -> int:
            return skin_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.skin, ctx.quality, ms(s.skin_tau_s),
                ms(s.skin_warmup_s), ms(s.gap_s), *st, sc, vals,
                *self.rules.args(), *self.ev(ctx),
            )  # fmt: skip

        drive(len(ctx.idx), ctx.events, call)
