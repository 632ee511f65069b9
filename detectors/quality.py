"""Signal quality (QARTOD-style): gross range, flat line, rate of change, gaps, GPS accuracy.

Writes one quality byte per sample (`detectors.base.Q_*` bits): a channel bit is set only
when the value is present and passed every test, and the physiological detectors read only
such values. A time-weighted fraction of bad samples per channel drives ``sensor_fault``.
"""

from __future__ import annotations

from typing import Any, ClassVar

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


@helper
def channel_step(  # type: ignore[no-untyped-def]
    v, t, lo, hi, roc, flat_ms, gap_ms, tau_ms, last_v, last_t, flat_t, frac, w, w_step
):
    """One present value of a channel: its tests, then the bad-fraction EWMA. Returns
    (good, flat-run start, bad fraction, EWMA weight cache); the channel's new last value
    and time are ``v`` and ``t``."""
    bad, flat_t, step = channel_test(v, t, lo, hi, roc, flat_ms, gap_ms, last_v, last_t, flat_t)
    w, w_step = ewma_weight(step, tau_ms, w_step, w)
    frac += w * ((1.0 if bad else 0.0) - frac)
    return not bad, flat_t, frac, w, w_step


@helper
def quality_step(  # type: ignore[no-untyped-def]
    t, v0, v1, v2, la, lo_, acc, mo, lo, hi, roc, flat_ms, gap_ms, tau_ms, gps_max, st, w, w_step,
):  # fmt: skip
    """One fresh sample of a device: its quality bits and the device's new state.

    ``st`` is the device's state as a tuple of scalars (`QualityDetector.load` order:
    last value, last time, flat-run start and bad fraction of HR, SpO2 and skin, then
    the fault score); returns (bits, new ``st``, whether any channel was present, ``w``,
    ``w_step``). Scalars in and out, so a kernel walking one device's samples keeps the
    state in registers.
    """
    lv0, lv1, lv2, lt0, lt1, lt2, ft0, ft1, ft2, fr0, fr1, fr2, fault = st
    q = Q_FRESH
    if v0 == v0:
        good, ft0, fr0, w, w_step = channel_step(
            v0, t, lo[0], hi[0], roc[0], flat_ms[0], gap_ms, tau_ms, lv0, lt0, ft0, fr0, w, w_step
        )
        lv0 = v0
        lt0 = t
        if good:
            q |= Q_HR
    if v1 == v1:
        good, ft1, fr1, w, w_step = channel_step(
            v1, t, lo[1], hi[1], roc[1], flat_ms[1], gap_ms, tau_ms, lv1, lt1, ft1, fr1, w, w_step
        )
        lv1 = v1
        lt1 = t
        if good:
            q |= Q_SPO2
    if v2 == v2:
        good, ft2, fr2, w, w_step = channel_step(
            v2, t, lo[2], hi[2], roc[2], flat_ms[2], gap_ms, tau_ms, lv2, lt2, ft2, fr2, w, w_step
        )
        lv2 = v2
        lt2 = t
        if good:
            q |= Q_SKIN
    if la == la and lo_ == lo_ and not acc > gps_max:
        q |= Q_GPS
    if mo == mo:
        q |= Q_MOTION
    present = v0 == v0 or v1 == v1 or v2 == v2
    if present:
        fault = max(fr0, max(fr1, fr2))
    st = (lv0, lv1, lv2, lt0, lt1, lt2, ft0, ft1, ft2, fr0, fr1, fr2, fault)
    return q, st, present, w, w_step


@helper
def quality_load(s, last_v, last_t, flat_t, frac, fault):  # type: ignore[no-untyped-def]
    """A device's quality state as the scalars `quality_step` takes."""
    return (
        last_v[s, 0], last_v[s, 1], last_v[s, 2], last_t[s, 0], last_t[s, 1], last_t[s, 2],
        flat_t[s, 0], flat_t[s, 1], flat_t[s, 2], frac[s, 0], frac[s, 1], frac[s, 2], fault[s],
    )  # fmt: skip


@helper
def quality_store(s, st, last_v, last_t, flat_t, frac, fault):  # type: ignore[no-untyped-def]
    """Write back what `quality_load` read."""
    last_v[s, 0], last_v[s, 1], last_v[s, 2] = st[0], st[1], st[2]
    last_t[s, 0], last_t[s, 1], last_t[s, 2] = st[3], st[4], st[5]
    flat_t[s, 0], flat_t[s, 1], flat_t[s, 2] = st[6], st[7], st[8]
    frac[s, 0], frac[s, 1], frac[s, 2] = st[9], st[10], st[11]
    fault[s] = st[12]


@kernel
def quality_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, hr, spo2, skin, lat, lon, gps_acc, motion, quality,
    lo, hi, roc, flat_ms, gap_ms, tau_ms, gps_max,
    last_ts, last_v, last_t, flat_t, frac, fault, sc,
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
        if ev_n[0] + 1 > cap:
            return k
        t = ts[i]
        if last_ts[s] >= 0 and t <= last_ts[s]:
            quality[i] = 0  # late or duplicate: stored, but not fed to the detectors
            continue
        last_ts[s] = t
        st = quality_load(s, last_v, last_t, flat_t, frac, fault)
        q, st, present, w, w_step = quality_step(
            t, np.float64(hr[i]), np.float64(spo2[i]), np.float64(skin[i]), lat[i], lon[i],
            gps_acc[i], motion[i], lo, hi, roc, flat_ms, gap_ms, tau_ms, gps_max, st, w, w_step,
        )  # fmt: skip
        quality_store(s, st, last_v, last_t, flat_t, frac, fault)
        quality[i] = q
        if present:
            sc[0] = st[12]
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

    def fused_args(self) -> tuple[Any, ...]:
        s = self.settings
        params = (self._lo, self._hi, self._roc, self._flat, ms(s.gap_s), ms(s.fault_tau_s),
                  f32(s.gps_acc_max_m))  # fmt: skip
        st = self.a("last_ts", "last_v", "last_t", "flat_t", "frac", "fault")
        # scratch per call: calls for different slot ranges may run concurrently
        return params, st, np.zeros(1), self.rules.args()

    def update(self, ctx: BatchContext) -> None:
        params, st, sc, rules = self.fused_args()

        def call(start: int) -> int:
            return quality_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.hr, ctx.spo2, ctx.skin, ctx.lat, ctx.lon,
                ctx.gps_acc, ctx.motion, ctx.quality,
                *params, *st, sc, *rules, *self.ev(ctx),
            )  # fmt: skip

        drive(len(ctx.idx), ctx.events, call)
