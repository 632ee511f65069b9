"""SpO2: a trailing time-window mean of good samples, held below a limit before alarming.

Clinical alarm practice (SPEC.md §4): 10–15 s averaging plus a hold delay cuts false SpO2
alarms by ~60 %; critical below 90 % for 15 s, warning below 94 % for 60 s.

The window is a running sum: each sample adds its value and drops the samples that left the
window, O(1) per sample instead of a scan back over the ring. The running sum is *exactly*
the sum a scan would compute: good values are float32 within the gross range (1–100 %, see
`DetectorSettings.spo2_min_pct`), i.e. multiples of 2⁻²³ below 2⁷, so every partial sum of
up to 33 of them needs at most 12 + 23 = 35 significant bits and float64 (53 bits) adds and
subtracts them without rounding, in any order.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._jit import helper, kernel
from detectors.base import Q_FRESH, Q_SPO2, BatchContext, Detector, StateField, drive, ms
from detectors.config import DetectorSettings
from detectors.models import AlarmKind, Severity, WorkerProfile
from detectors.policy import Rule, step_rules

#: Samples kept per device for the window mean (10 s at up to 3 Hz).
RING = 32


@helper
def spo2_step(s, t, v, window_ms, min_samples, ring_v, ring_t, head, w_n, w_sum):  # type: ignore[no-untyped-def]
    """One good SpO2 value ``v`` of slot ``s``: push it into the slot's ring, drop what left
    the window (t − W, t]. Returns the new (head, window count, window sum, mean)."""
    size = ring_v.shape[1]
    h = head + 1
    if h == size:
        h = 0
    m = w_n  # the window is ring entries h−m+1 … h (mod size), oldest first
    total = w_sum
    if m == size:  # the entry about to be overwritten is still in the window
        total -= ring_v[s, h]
        m -= 1
    ring_v[s, h] = v
    ring_t[s, h] = t
    total += v
    m += 1
    j = h - m + 1
    if j < 0:
        j += size
    while m > 0 and ring_t[s, j] <= t - window_ms:  # drop those out of (t − W, t]
        total -= ring_v[s, j]
        m -= 1
        j = j + 1 if j + 1 < size else 0
    a = total / m if m >= min_samples else np.nan
    return h, m, total, a


@kernel
def spo2_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, spo2, quality, window_ms, min_samples,
    ring_v, ring_t, head, w_n, w_sum, avg, sc,
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
        if not (q & Q_FRESH and q & Q_SPO2):
            continue
        if ev_n[0] + 1 > cap:
            return k
        t = ts[i]
        head[s], w_n[s], w_sum[s], a = spo2_step(
            s, t, spo2[i], window_ms, min_samples, ring_v, ring_t, head[s], w_n[s], w_sum[s]
        )
        avg[s] = a
        sc[0] = a
        sc[1] = a
        step_rules(
            s, t, sc, sc, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active,
            csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
        )  # fmt: skip
    return n


class SpO2Detector(Detector):
    """Averaged SpO2 → ``spo2_low`` (warning < 94 % for 60 s, critical < 90 % for 15 s)."""

    name = "spo2"
    fields: ClassVar[dict[str, StateField]] = {
        "ring_v": StateField(np.float32, np.nan, RING),
        "ring_t": StateField(np.int64, -1, RING),
        "head": StateField(np.int32, 0),
        "w_n": StateField(np.int32, 0),
        "w_sum": StateField(np.float64, 0.0),
        "avg": StateField(np.float64, np.nan),
    }
    scores_ = ("avg",)

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        clear = ms(s.spo2_clear_s)
        return (
            Rule(AlarmKind.SPO2_LOW, Severity.WARNING, "<", ms(s.spo2_warning_s), clear, "avg"),
            Rule(AlarmKind.SPO2_LOW, Severity.CRITICAL, "<", ms(s.spo2_critical_s), clear, "avg"),
        )

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        s = self.settings
        h = s.spo2_hysteresis_pct
        return (
            [s.spo2_warning_pct, s.spo2_critical_pct],
            [s.spo2_warning_pct + h, s.spo2_critical_pct + h],
        )

    def fused_args(self) -> tuple[Any, ...]:
        s = self.settings
        st = self.a("ring_v", "ring_t", "head", "w_n", "w_sum", "avg")
        return (ms(s.spo2_avg_s), s.spo2_min_samples), st, np.zeros(2), self.rules.args()

    def update(self, ctx: BatchContext) -> None:
        params, st, sc, rules = self.fused_args()

        def call(start: int) -> int:
            return spo2_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.spo2, ctx.quality, *params, *st, sc, *rules, *self.ev(ctx),
            )  # fmt: skip

        drive(len(ctx.idx), ctx.events, call)
