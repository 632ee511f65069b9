"""Physiological Strain Index (Moran 1998) from the core-temperature estimate and 1-min HR:
PSI = 5·(CT − CT0)/(39.5 − CT0) + 5·(HR − HR0)/(180 − HR0), clipped to 0–10."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors._jit import helper, kernel
from detectors.base import BatchContext, Detector, StateField, drive
from detectors.config import DetectorSettings
from detectors.models import AlarmKind, Severity, WorkerProfile
from detectors.policy import Rule, step_rules


@helper
def psi(ct, hr, ct0, hr0, ct_max, hr_max):  # type: ignore[no-untyped-def]
    """Moran's PSI, clipped to 0–10 (NaN when either input is missing)."""
    p = 5.0 * (ct - ct0) / (ct_max - ct0) + 5.0 * (hr - hr0) / (hr_max - hr0)
    if p != p:
        return p
    return min(10.0, max(0.0, p))


@kernel
def strain_kernel(  # type: ignore[no-untyped-def]
    start, m_slot, m_end, m_hr, m_ct, m_n, ct0, ct_max, hr_max,
    hr0, score, sc,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    n = m_n[0]
    cap = ev_slot.shape[0]
    for j in range(start, n):
        if ev_n[0] + 1 > cap:
            return j
        s = m_slot[j]
        p = psi(m_ct[j], m_hr[j], ct0, hr0[s], ct_max, hr_max)
        if p == p:
            score[s] = p
        sc[0] = p
        sc[1] = p
        step_rules(
            s, m_end[j], sc, sc, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active,
            csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
        )  # fmt: skip
    return n


class StrainDetector(Detector):
    """PSI → ``strain_high`` (warning ≥ 7, critical ≥ 9). Runs after `CoreTempDetector`."""

    name = "strain"
    fields: ClassVar[dict[str, StateField]] = {"psi": StateField(np.float64, np.nan)}
    params: ClassVar[dict[str, StateField]] = {"hr0": StateField(np.float64, 70.0)}
    scores_ = ("psi",)

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        k = AlarmKind.STRAIN_HIGH
        return (
            Rule(k, Severity.WARNING, ">=", 0, 0, "psi"),
            Rule(k, Severity.CRITICAL, ">=", 0, 0, "psi"),
        )

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        s = self.settings
        h = s.psi_hysteresis
        return [s.psi_high, s.psi_very_high], [s.psi_high - h, s.psi_very_high - h]

    def param_values(self, profile: WorkerProfile | None) -> dict[str, float]:
        rest = profile.resting_hr if profile is not None else None
        return {"hr0": rest if rest is not None else self.settings.default_resting_hr}

    def update(self, ctx: BatchContext) -> None:
        s = self.settings
        mb = ctx.minutes
        sc = np.zeros(2)

        def call(start: int) -> int:
            return strain_kernel(  # type: ignore[no-any-return]
                start, mb.slot, mb.end_ts, mb.hr, mb.ct, mb.n, s.ct_start_c, s.psi_ct_max_c,
                s.psi_hr_max_bpm, *self.a("hr0", "psi"), sc, *self.rules.args(), *self.ev(ctx),
            )  # fmt: skip

        drive(len(mb), ctx.events, call)
