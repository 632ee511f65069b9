"""Per-sample plausibility: values no working sensor can produce are rejected with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from ingest.config import IngestSettings
from ingest.wire import MEASUREMENTS, SampleBatch

#: The rules in the order they are tried; a rejected sample is named by the first that fails.
RULES: tuple[str, ...] = (
    *(f"{m} is infinite" for m in MEASUREMENTS),
    "timestamp too far in the future",
    "timestamp too old",
    "heart rate out of range",
    "skin temperature out of range",
    "SpO2 outside 0-100 %",
    "latitude outside -90..90",
    "longitude outside -180..180",
    "latitude and longitude not both given",
    "GPS accuracy out of range",
    "negative motion intensity",
    "battery outside 0-100 %",
)


@dataclass(frozen=True)
class Verdict:
    """Which samples of a batch are plausible, and why the others are not.

    Attributes:
        codes: per sample, a bit mask of the failed rules (bit ``k`` is ``RULES[k]``); 0 = ok.
    """

    codes: npt.NDArray[np.uint32]

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        ok: npt.NDArray[np.bool_] = self.codes == 0
        return ok

    @property
    def all_ok(self) -> bool:
        return not self.codes.any()

    @cached_property
    def reasons(self) -> dict[int, str]:
        """Index → the first failed rule, for the rejected samples only."""
        bad = np.flatnonzero(self.codes)
        return {int(i): RULES[_lowest_bit(int(self.codes[i]))] for i in bad}


def _lowest_bit(x: int) -> int:
    return (x & -x).bit_length() - 1


def check(batch: SampleBatch, *, now_ms: int, settings: IngestSettings) -> Verdict:
    """Vectorised checks over a batch; missing values (NaN) never fail a rule."""
    lim = settings.plausibility
    codes = np.zeros(len(batch), dtype=np.uint32)
    bit = 0

    def rule(bad: npt.NDArray[np.bool_]) -> None:
        nonlocal bit
        codes[bad] |= np.uint32(1 << bit)
        bit += 1

    for name in MEASUREMENTS:
        rule(np.isinf(getattr(batch, name)))
    rule(batch.ts_ms > now_ms + settings.max_future_ms)
    rule(batch.ts_ms < now_ms - settings.max_past_ms)
    # NaN compares false, so a missing value never fails a range rule.
    rule((batch.hr < 0) | (batch.hr > lim.hr_max))
    rule((batch.skin_temp < lim.skin_temp_min) | (batch.skin_temp > lim.skin_temp_max))
    rule((batch.spo2 < 0) | (batch.spo2 > 100))
    rule(np.abs(batch.lat) > 90)
    rule(np.abs(batch.lon) > 180)
    rule(np.isnan(batch.lat) != np.isnan(batch.lon))
    rule((batch.gps_acc < 0) | (batch.gps_acc > lim.gps_acc_max))
    rule(batch.motion < 0)
    rule((batch.battery < 0) | (batch.battery > 100))
    assert bit == len(RULES)
    return Verdict(codes)
