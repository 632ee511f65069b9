"""1-minute aggregation of good HR samples (the input of the minute-level detectors)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from detectors._jit import kernel
from detectors.base import Q_FRESH, Q_HR, BatchContext, Detector, StateField, drive
from detectors.config import DetectorSettings
from detectors.policy import Rule

MINUTE_MS = 60_000


@kernel
def aggregate_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, hr, quality, min_samples, cur, total, count,
    m_slot, m_end, m_hr, m_count, m_n,
):  # fmt: skip
    """Close a slot's minute when its first sample of a later minute arrives."""
    n = idx.shape[0]
    cap = m_slot.shape[0]
    for k in range(start, n):
        i = idx[k]
        s = slot[i]
        q = quality[i]
        if not q & Q_FRESH:
            continue
        if m_n[0] + 1 > cap:
            return k
        m = ts[i] // 60000
        if cur[s] != m:
            if cur[s] >= 0:
                j = m_n[0]
                m_slot[j] = s
                m_end[j] = (cur[s] + 1) * 60000
                m_hr[j] = total[s] / count[s] if count[s] >= min_samples else np.nan
                m_count[j] = count[s]
                m_n[0] = j + 1
            cur[s] = m
            total[s] = 0.0
            count[s] = 0
        if q & Q_HR:
            total[s] += hr[i]
            count[s] += 1
    return n


class MinuteAggregator(Detector):
    """Mean of good HR samples per device and clock minute; no alarms of its own."""

    name = "aggregate"
    fields: ClassVar[dict[str, StateField]] = {
        "cur": StateField(np.int64, -1),
        "total": StateField(np.float64, 0.0),
        "count": StateField(np.int32, 0),
    }

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        return ()

    def update(self, ctx: BatchContext) -> None:
        mb = ctx.minutes
        st = self.a("cur", "total", "count")

        def call(start: int) -> int:
            return aggregate_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.hr, ctx.quality,
                self.settings.minute_min_samples, *st, mb.slot, mb.end_ts, mb.hr, mb.count, mb.n,
            )  # fmt: skip

        drive(len(ctx.idx), mb, call)
