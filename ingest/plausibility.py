"""Per-sample plausibility: values no working sensor can produce are rejected with a reason."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ingest.config import IngestSettings
from ingest.wire import SampleBatch


@dataclass(frozen=True, slots=True)
class Verdict:
    """Which samples of a batch are plausible, and why the others are not."""

    ok: npt.NDArray[np.bool_]
    reasons: dict[int, str]

    @property
    def all_ok(self) -> bool:
        return not self.reasons


def check(batch: SampleBatch, *, now_ms: int, settings: IngestSettings) -> Verdict:
    """Vectorised checks over a batch; the first failing rule names each bad sample."""
    lim = settings.plausibility
    n = len(batch)
    reasons: dict[int, str] = {}

    def rule(bad: npt.NDArray[np.bool_], why: str) -> None:
        for i in np.flatnonzero(bad).tolist():
            reasons.setdefault(i, why)

    for name in ("hr", "skin_temp", "spo2", "lat", "lon", "gps_acc", "motion", "battery"):
        rule(np.isinf(getattr(batch, name)), f"{name} is infinite")
    rule(batch.ts_ms > now_ms + settings.max_future_ms, "timestamp too far in the future")
    rule(batch.ts_ms < now_ms - settings.max_past_ms, "timestamp too old")
    # NaN compares false, so a missing value never fails a range rule.
    rule((batch.hr < 0) | (batch.hr > lim.hr_max), "heart rate out of range")
    rule(
        (batch.skin_temp < lim.skin_temp_min) | (batch.skin_temp > lim.skin_temp_max),
        "skin temperature out of range",
    )
    rule((batch.spo2 < 0) | (batch.spo2 > 100), "SpO2 outside 0-100 %")
    rule(np.abs(batch.lat) > 90, "latitude outside -90..90")
    rule(np.abs(batch.lon) > 180, "longitude outside -180..180")
    rule(np.isnan(batch.lat) != np.isnan(batch.lon), "latitude and longitude not both given")
    rule((batch.gps_acc < 0) | (batch.gps_acc > lim.gps_acc_max), "GPS accuracy out of range")
    rule(batch.motion < 0, "negative motion intensity")
    rule((batch.battery < 0) | (batch.battery > 100), "battery outside 0-100 %")
    ok = np.ones(n, dtype=bool)
    if reasons:
        ok[list(reasons)] = False
    return Verdict(ok=ok, reasons=reasons)
