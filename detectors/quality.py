"""Signal quality (QARTOD-style): gross range, flat line, rate of change, gaps, GPS accuracy.

Writes one quality byte per sample (`detectors.base.Q_*` bits): a channel bit is set only
when the value is present and passed every test, and the physiological detectors read only
such values. A time-weighted fraction of bad samples per channel drives ``sensor_fault``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors._jit import helper, kernel
from detectors.base import (
    Q_FRESH,
    Q_GPS,
    Q_HR,
    Q_MOTION,
    Q_SKIN,
    Q_SPO2,
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

#: Channel order of the per-channel arrays: HR, SpO2, skin temperature.
N_CH = 3
#: The quality bit of each channel, in that order.
CHANNEL_BIT = (Q_HR, Q_SPO2, Q_SKIN)


@helper
def channel_test(v, t, lo, hi, roc, flat_ms, gap_ms, last_v, last_t, flat_t):  # type: ignore[no-untyped-def]
    """Test one present value of a channel against its state (last value and time, start of
    the current flat run). Returns (bad, new flat-run start, step for the bad-fraction EWMA).

    Scalars in and out: the kernel loads and stores the state, so no array passes through
    this inlined helper (an array argument costs reference-count updates on every call).
    """
    bad = v < lo or v > hi
    step = t - last_t
    if last_t >= 0 and step <= gap_ms:
        if step == 1000:  # 1 Hz: x / 1.0 is x exactly, so skip the division
            if abs(v - last_v) > roc:
                bad = True
        elif step > 0 and abs(v - last_v) / (step / 1000.0) > roc:
            bad = True
        if v != last_v:
            flat_t = t  # a new value starts a new flat run: O(1) per sample
        elif t - flat_t >= flat_ms:
            bad = True
        return bad, flat_t, step
    return bad, t, 1000  # first value, or after a gap: the tests restart


@kernel
def quality_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, hr, spo2, skin, lat, lon, gps_acc, motion, quality,
    lo, hi, roc, flat_ms, gap_ms, tau_ms, gps_max,
    last_ts, last_v, last_t, flat_t, frac, fault, sc,
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
        if ev_n[0] + 1 > cap:
            return k
        t = ts[i]
        if last_ts[s] >= 0 and t <= last_ts[s]:
            quality[i] = 0  # late or duplicate: stored, but not fed to the detectors
            continue
        last_ts[s] = t
        q = Q_FRESH
        v0 = np.float64(hr[i])
        v1 = np.float64(spo2[i])
        v2 = np.float64(skin[i])
        for c in range(N_CH):
            v = v0 if c == 0 else (v1 if c == 1 else v2)
            if v != v:
                continue
            bad, flat_t[s, c], step = channel_test(
                v, t, lo[c], hi[c], roc[c], flat_ms[c], gap_ms, last_v[s, c], last_t[s, c],
                flat_t[s, c],
            )  # fmt: skip
            w, w_step = ewma_weight(step, tau_ms, w_step, w)
            frac[s, c] += w * ((1.0 if bad else 0.0) - frac[s, c])
            last_v[s, c] = v
            last_t[s, c] = t
            if not bad:
                q |= CHANNEL_BIT[c]
        any_present = v0 == v0 or v1 == v1 or v2 == v2
        la = lat[i]
        lo_ = lon[i]
        acc = gps_acc[i]
        if la == la and lo_ == lo_ and not acc > gps_max:
            q |= Q_GPS
        if motion[i] == motion[i]:
            q |= Q_MOTION
        quality[i] = q
        if any_present:
            worst = max(frac[s, 0], max(frac[s, 1], frac[s, 2]))
            fault[s] = worst
            sc[0] = worst
            step_rules(
                s, t, sc, sc, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active,
                csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
            )  # fmt: skip
    return n


class QualityDetector(Detector):
    """Signal quality gating everything else; raises ``sensor_fault`` (warning)."""

    name = "quality"
    fields: ClassVar[dict[str, StateField]] = {
        "last_ts": StateField(np.int64, -1),
        "last_v": StateField(np.float64, np.nan, N_CH),
        "last_t": StateField(np.int64, -1, N_CH),
        "flat_t": StateField(np.int64, -1, N_CH),
        "frac": StateField(np.float64, 0.0, N_CH),
        "fault": StateField(np.float64, 0.0),
    }
    scores_ = ("fault", "frac")

    def __init__(self, settings: DetectorSettings) -> None:
        super().__init__(settings)
        s = settings
        self._lo = np.array([f32(v) for v in (s.hr_min_bpm, s.spo2_min_pct, s.skin_min_c)])
        self._hi = np.array([f32(v) for v in (s.hr_max_bpm, s.spo2_max_pct, s.skin_max_c)])
        self._roc = np.array([s.hr_roc_bpm_s, s.spo2_roc_pct_s, s.skin_roc_c_s])
        self._flat = np.array([ms(s.hr_flat_s), ms(s.spo2_flat_s), ms(s.skin_flat_s)])

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        return (
            Rule(AlarmKind.SENSOR_FAULT, Severity.WARNING, ">=", 0, ms(s.fault_clear_s), "fault"),
        )

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        s = self.settings
        return [s.fault_on_fraction], [s.fault_off_fraction]

    def update(self, ctx: BatchContext) -> None:
        s = self.settings
        st = self.a("last_ts", "last_v", "last_t", "flat_t", "frac", "fault")
        sc = np.zeros(1)  # per call: calls for different slot ranges may run concurrently

        def call(start: int) -> int:
            return quality_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.hr, ctx.spo2, ctx.skin, ctx.lat, ctx.lon,
                ctx.gps_acc, ctx.motion, ctx.quality,
                self._lo, self._hi, self._roc, self._flat, ms(s.gap_s), ms(s.fault_tau_s),
                f32(s.gps_acc_max_m), *st, sc, *self.rules.args(), *self.ev(ctx),
            )  # fmt: skip

        drive(len(ctx.idx), ctx.events, call)
