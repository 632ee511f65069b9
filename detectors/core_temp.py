"""Core temperature from 1-minute mean heart rate: the ECTemp extended Kalman filter.

Buller et al. 2013 (bias −0.03 ± 0.32 °C): a random-walk state CT with process variance
γ = 0.022² °C² per minute, observed through HR = −4.5714·CT² + 384.4286·CT − 7887.1 with
variance σ² = 18.88² bpm²; start at 37.0 °C with variance 0; no update for HR outside
40–240 bpm. ECTemp is patented in the US (US 10,702,165): the estimator is pluggable
(`ESTIMATORS`), every estimator a kernel with the signature of `ectemp_step`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Final

import numpy as np

from detectors._jit import helper, kernel
from detectors.base import BatchContext, Detector, StateField, drive, ms
from detectors.config import DetectorSettings
from detectors.models import AlarmKind, Severity, WorkerProfile
from detectors.policy import Rule, step_rules

GAMMA: Final = 0.022**2  # °C² per minute
SIGMA2: Final = 18.88**2  # bpm²
C2: Final = -4.5714
C1: Final = 384.4286
C0: Final = -7887.1


@helper
def ectemp_step(x, v, hr, minutes, hr_min, hr_max):  # type: ignore[no-untyped-def]
    """One ECTemp step over ``minutes`` elapsed minutes; returns the new (CT, variance)."""
    v = v + GAMMA * minutes
    if hr == hr and hr_min <= hr <= hr_max:
        m = 2.0 * C2 * x + C1
        k = v * m / (m * m * v + SIGMA2)
        x = x + k * (hr - (C2 * x * x + C1 * x + C0))
        v = (1.0 - k * m) * v
    return x, v


#: Core-temperature estimators by name (settings pick one); all share `ectemp_step`'s form.
ESTIMATORS: Final[dict[str, Callable[..., Any]]] = {"ectemp": ectemp_step}


@kernel
def core_temp_kernel(  # type: ignore[no-untyped-def]
    start, m_slot, m_end, m_hr, m_ct, m_n, hr_min, hr_max,
    ct, var, last_min, sc,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    n = m_n[0]
    cap = ev_slot.shape[0]
    for j in range(start, n):
        if ev_n[0] + 1 > cap:
            return j
        s = m_slot[j]
        t = m_end[j]
        minute = t // 60000
        elapsed = 1 if last_min[s] < 0 else minute - last_min[s]
        last_min[s] = minute
        x, v = ectemp_step(ct[s], var[s], m_hr[j], elapsed, hr_min, hr_max)
        ct[s] = x
        var[s] = v
        m_ct[j] = x
        sc[0] = x
        sc[1] = x
        step_rules(
            s, t, sc, sc, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active,
            csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
        )  # fmt: skip
    return n


class CoreTempDetector(Detector):
    """ECTemp core temperature → ``core_temp_high`` (warning at 38.0 / 38.5 °C by
    acclimatisation, critical at ≥ 39.0 °C for 4 min)."""

    name = "core_temp"
    fields: ClassVar[dict[str, StateField]] = {
        "ct": StateField(np.float64, 37.0),
        "var": StateField(np.float64, 0.0),
        "last_min": StateField(np.int64, -1),
    }
    scores_ = ("ct",)

    def param_values(self, profile: WorkerProfile | None) -> dict[str, float]:
        return {"ct": self.settings.ct_start_c}

    def configure(self, slot: int, profile: WorkerProfile | None) -> None:
        on, off = self.limits(profile)
        self.rules.set_limits(slot, on, off)  # the estimate itself is state, not a parameter

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        k = AlarmKind.CORE_TEMP_HIGH
        return (
            Rule(k, Severity.WARNING, ">=", 0, 0, "ct"),
            Rule(k, Severity.CRITICAL, ">=", ms(s.ct_critical_minutes * 60), 0, "ct"),
        )

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        s = self.settings
        acclimatized = profile is not None and profile.acclimatized
        warn = s.ct_warn_acclimatized_c if acclimatized else s.ct_warn_unacclimatized_c
        h = s.ct_hysteresis_c
        return [warn, s.ct_critical_c], [warn - h, s.ct_critical_c - h]

    def update(self, ctx: BatchContext) -> None:
        s = self.settings
        mb = ctx.minutes
        st = self.a("ct", "var", "last_min")
        sc = np.zeros(2)

        def call(start: int) -> int:
            return core_temp_kernel(  # type: ignore[no-any-return]
                start, mb.slot, mb.end_ts, mb.hr, mb.ct, mb.n, s.ct_hr_min_bpm, s.ct_hr_max_bpm,
                *st, sc, *self.rules.args(), *self.ev(ctx),
            )  # fmt: skip

        drive(len(mb), ctx.events, call)
