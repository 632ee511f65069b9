"""Sustained heart rate: 1-minute mean HR over 180 − age for ≥ 3 consecutive minutes
(ACGIH TLV heat-strain criteria, SPEC.md §4)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors._jit import kernel
from detectors.base import BatchContext, Detector, StateField, drive
from detectors.config import DetectorSettings
from detectors.models import AlarmKind, Severity, WorkerProfile
from detectors.policy import Rule, step_rules


@kernel
def sustained_kernel(  # type: ignore[no-untyped-def]
    start, m_slot, m_end, m_hr, m_n, hyst,
    limit, above, last_min, sc, vals,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    n = m_n[0]
    cap = ev_slot.shape[0]
    for j in range(start, n):
        if ev_n[0] + 1 > cap:
            return j
        s = m_slot[j]
        minute = m_end[j] // 60000
        hr = m_hr[j]
        if hr != hr or (last_min[s] >= 0 and minute != last_min[s] + 1):
            above[s] = 0  # a missing minute breaks "consecutive"
        if hr == hr:
            if hr > limit[s]:
                above[s] += 1
            elif hr < limit[s] - hyst:
                above[s] = 0
        last_min[s] = minute
        sc[0] = above[s]
        vals[0] = hr
        step_rules(
            s, m_end[j], sc, vals, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since,
            active, csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
        )  # fmt: skip
    return n


class SustainedHeartRateDetector(Detector):
    """``hr_sustained_high`` (critical): the count of consecutive minutes over 180 − age."""

    name = "hr_sustained"
    fields: ClassVar[dict[str, StateField]] = {
        "above": StateField(np.int32, 0),
        "last_min": StateField(np.int64, -1),
    }
    params: ClassVar[dict[str, StateField]] = {"limit": StateField(np.float64, 140.0)}
    scores_ = ("above",)

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        return (Rule(AlarmKind.HR_SUSTAINED_HIGH, Severity.CRITICAL, ">=", 0, 0, "above"),)

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        return [float(self.settings.hr_sustained_minutes)], [1.0]

    def param_values(self, profile: WorkerProfile | None) -> dict[str, float]:
        s = self.settings
        age = profile.age if profile is not None and profile.age is not None else s.default_age
        return {"limit": s.hr_sustained_base_bpm - age}

    def update(self, ctx: BatchContext) -> None:
        mb = ctx.minutes
        sc, vals = np.zeros(1), np.zeros(1)

        def call(start: int) -> int:
            return sustained_kernel(  # type: ignore[no-any-return]
                start, mb.slot, mb.end_ts, mb.hr, mb.n, self.settings.hr_sustained_hysteresis_bpm,
                *self.a("limit", "above", "last_min"), sc, vals,
                *self.rules.args(), *self.ev(ctx),
            )  # fmt: skip

        drive(len(mb), ctx.events, call)
