"""Statistical heart rate: a per-worker baseline of 1-min means, then a one-sided upper
CUSUM (k = 0.5σ, h = 5σ, SPEC.md §4; ARL0 ≈ 465 samples, hence 1-min aggregates).

Warm-up is explicit: the first ``drift_warmup_minutes`` valid minutes form the baseline
(mean, σ floored) and score nothing. 1-min means of heart rate are strongly autocorrelated
(lag-1 ρ ≈ 0.7 in the real Empatica session, ≈ 0.9 under bouts of work), which breaks the
CUSUM's ARL0 (it assumes independent observations); σ is therefore the long-run σ of an
AR(1) process, σ·√((1 + ρ)/(1 − ρ)) (variance inflation for autocorrelated data,
Montgomery, *Introduction to Statistical Quality Control*).

ρ is a site setting (`DetectorSettings.drift_rho`), not each worker's warm-up estimate: from
the 29 pairs of a 30-minute warm-up, ρ̂ scatters by ~0.1 around 0.9, exactly where the
inflation factor changes fastest (3.0 at 0.8, 4.4 at 0.9, 6.2 at 0.95), so alike workers got
σ from 18 to 45 bpm and half of the synthetic drifts went unseen (see docs/detectors.md).

Only upward drift is scored: a falling heart rate is not heat strain, and a resting
worker's drops would otherwise alarm.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from detectors._jit import kernel
from detectors.base import BatchContext, Detector, StateField, drive, ms
from detectors.config import DetectorSettings
from detectors.models import AlarmKind, Severity, WorkerProfile
from detectors.policy import Rule, step_rules


@kernel
def drift_kernel(  # type: ignore[no-untyped-def]
    start, m_slot, m_end, m_hr, m_n, warmup, k, sigma_floor, inflation,
    nb, mean, m2, sigma, cusum, sc, vals,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    n = m_n[0]
    cap = ev_slot.shape[0]
    for j in range(start, n):
        if ev_n[0] + 1 > cap:
            return j
        s = m_slot[j]
        x = m_hr[j]
        if x != x:
            continue
        if nb[s] < warmup:  # learn the baseline, score nothing
            nb[s] += 1
            d = x - mean[s]  # Welford
            mean[s] += d / nb[s]
            m2[s] += d * (x - mean[s])
            if nb[s] == warmup:
                sigma[s] = max(math.sqrt(m2[s] / (nb[s] - 1)), sigma_floor) * inflation
            continue
        cusum[s] = max(0.0, cusum[s] + (x - mean[s]) / sigma[s] - k)
        sc[0] = cusum[s]
        vals[0] = x
        step_rules(
            s, m_end[j], sc, vals, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since,
            active, csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
        )  # fmt: skip
    return n


def long_run_factor(rho: float) -> float:
    """σ of 1-min means → long-run σ of their sums under AR(1): √((1 + ρ)/(1 − ρ))."""
    return math.sqrt((1.0 + rho) / (1.0 - rho))


class DriftDetector(Detector):
    """``hr_drift`` (warning): the CUSUM of 1-min means over the worker's baseline, in σ."""

    name = "hr_drift"
    fields: ClassVar[dict[str, StateField]] = {
        "nb": StateField(np.int32, 0),
        "mean": StateField(np.float64, 0.0),
        "m2": StateField(np.float64, 0.0),
        "sigma": StateField(np.float64, np.nan),
        "cusum": StateField(np.float64, 0.0),
    }
    scores_ = ("cusum", "mean", "sigma")

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        hold = ms(s.drift_hold_minutes * 60)
        return (Rule(AlarmKind.HR_DRIFT, Severity.WARNING, ">=", hold, 0, "cusum"),)

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        s = self.settings
        return [s.drift_h_sigma], [s.drift_clear_sigma]

    def update(self, ctx: BatchContext) -> None:
        s = self.settings
        mb = ctx.minutes
        sc, vals = np.zeros(1), np.zeros(1)

        def call(start: int) -> int:
            return drift_kernel(  # type: ignore[no-any-return]
                start, mb.slot, mb.end_ts, mb.hr, mb.n, s.drift_warmup_minutes,
                s.drift_k_sigma, s.drift_sigma_floor_bpm, long_run_factor(s.drift_rho),
                *self.a("nb", "mean", "m2", "sigma", "cusum"), sc, vals,
                *self.rules.args(), *self.ev(ctx),
            )  # fmt: skip

        drive(len(mb), ctx.events, call)
