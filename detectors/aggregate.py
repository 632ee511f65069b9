"""1-minute aggregation of good HR samples (the input of the minute-level detectors)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from detectors._jit import helper, kernel
from detectors.base import Q_FRESH, Q_HR, BatchContext, Detector, StateField, drive
from detectors.config import DetectorSettings
from detectors.policy import Rule

MINUTE_MS = 60_000


@helper
def aggregate_step(  # type: ignore[no-untyped-def]
    s, t, v, good, min_samples, cur, total, count, m_slot, m_end, m_hr, m_count, m_n
):
    """One fresh sample of slot ``s`` (HR ``v``, ``good`` when it passed the quality tests):
    closes the slot's minute into the minute buffer when ``t`` is in a later one. Returns
    the new (minute, HR sum, HR count); the caller checks the buffer's capacity."""
    m = t // 60000
    if cur != m:
        if cur >= 0:
            j = m_n[0]
            m_slot[j] = s
            m_end[j] = (cur + 1) * 60000
            m_hr[j] = total / count if count >= min_samples else np.nan
            m_count[j] = count
            m_n[0] = j + 1
        cur = m
        total = 0.0
        count = 0
    if good:
        total += np.float64(v)  # float64 also without the JIT (NumPy: float + float32 is float32)
        count += 1
    return cur, total, count


@kernel
def aggregate_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, hr, quality, min_samples, cur, total, count,
    m_slot, m_end, m_hr, m_count, m_n,
):  # fmt: skip
    """Close a slot's minute when its first sample of a later minute arrives (this detector
    alone; the pipeline runs `detectors.fused.fused_kernel` instead)."""
    n = idx.shape[0]
    cap = m_slot.shape[0]
    for k in range(start, n):
        i = idx[k]
        s = np.uint32(slot[i])
        q = quality[i]
        if not q & Q_FRESH:
            continue
        if m_n[0] + 1 > cap:
            return k
        cur[s], total[s], count[s] = aggregate_step(
            s, ts[i], hr[i], q & Q_HR, min_samples, cur[s], total[s], count[s],
            m_slot, m_end, m_hr, m_count, m_n,
        )  # fmt: skip
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

    def fused_args(self) -> tuple[Any, ...]:
        return self.settings.minute_min_samples, self.a("cur", "total", "count")

    def update(self, ctx: BatchContext) -> None:
        mb = ctx.minutes
        min_samples, st = self.fused_args()

        def call(start: int) -> int:
            return aggregate_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.hr, ctx.quality,
                min_samples, *st, mb.slot, mb.end_ts, mb.hr, mb.count, mb.n,
            )  # fmt: skip

        drive(len(ctx.idx), mb, call)
