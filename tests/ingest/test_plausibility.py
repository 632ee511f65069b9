"""Plausibility: impossible values are rejected per sample, with the rule that caught them."""

from __future__ import annotations

import dataclasses

import pytest

from ingest.config import IngestSettings
from ingest.plausibility import check
from ingest.wire import Sample, SampleBatch
from tests.factories import samples

NOW = 1_800_000_000_000
S = IngestSettings()


def _one(**changes: object) -> SampleBatch:
    base = samples("d1", 1, start_ms=NOW)[0]
    return SampleBatch.from_samples([dataclasses.replace(base, **changes)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"hr": 300.5}, "heart rate"),
        ({"hr": -1.0}, "heart rate"),
        ({"hr": float("inf")}, "hr is infinite"),
        ({"spo2": 100.5}, "SpO2"),
        ({"skin_temp": 60.5}, "skin temperature"),
        ({"lat": 90.5}, "latitude"),
        ({"lon": -180.5}, "longitude"),
        ({"lat": None}, "not both given"),
        ({"gps_acc": -1.0}, "GPS accuracy"),
        ({"motion": -0.1}, "negative motion"),
        ({"battery": 101.0}, "battery"),
        ({"ts_ms": NOW + S.max_future_ms + 1}, "future"),
        ({"ts_ms": NOW - S.max_past_ms - 1}, "too old"),
    ],
)
def test_check_impossible_value_is_rejected_with_reason(
    changes: dict[str, object], reason: str
) -> None:
    """Each rule names what was wrong."""
    verdict = check(_one(**changes), now_ms=NOW, settings=S)
    assert not verdict.ok[0]
    assert reason in verdict.reasons[0]


@pytest.mark.parametrize(
    "changes",
    [
        {"hr": 300.0},
        {"hr": 0.0},
        {"spo2": 100.0},
        {"ts_ms": NOW + S.max_future_ms},
        {"ts_ms": NOW - S.max_past_ms},
        {"hr": None, "spo2": None, "skin_temp": None, "lat": None, "lon": None},
    ],
)
def test_check_boundary_and_missing_values_pass(changes: dict[str, object]) -> None:
    """Limits are inclusive and missing values are never implausible."""
    verdict = check(_one(**changes), now_ms=NOW, settings=S)
    assert verdict.all_ok


def test_check_mixed_batch_keeps_the_good_samples() -> None:
    """One bad sample does not condemn the others of its frame."""
    good = samples("d1", 3, start_ms=NOW)
    bad = dataclasses.replace(good[1], spo2=150.0)
    verdict = check(SampleBatch.from_samples([good[0], bad, good[2]]), now_ms=NOW, settings=S)
    assert verdict.ok.tolist() == [True, False, True]
    assert list(verdict.reasons) == [1]


def test_check_samples_builder_is_plausible() -> None:
    """The factory's samples are the baseline of the other tests."""
    assert check(
        SampleBatch.from_samples(samples("d", 50, start_ms=NOW)), now_ms=NOW + 60_000, settings=S
    ).all_ok
    assert isinstance(samples("d", 1)[0], Sample)
