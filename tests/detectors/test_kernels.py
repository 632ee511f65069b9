"""Every kernel against its plain-numpy reference (tests/detectors/naive.py), on seeded
and hypothesis-generated series with NaN, duplicates, gaps and constant runs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.base import Detector
from detectors.config import DetectorSettings
from detectors.core_temp import CoreTempDetector
from detectors.drift import DriftDetector
from detectors.heart_rate import SustainedHeartRateDetector
from detectors.man_down import ManDownDetector
from detectors.models import AlarmKind, Geofence
from detectors.presence import PresenceDetector, distance_m
from detectors.quality import QualityDetector
from detectors.recovery import RecoveryDetector
from detectors.skin_temp import SkinTempDetector
from detectors.spo2 import SpO2Detector
from detectors.strain import StrainDetector
from tests.detectors import naive
from tests.detectors.conftest import DEVICE, of_kind, run
from tests.detectors.strategies import seeded, series

S = DetectorSettings(
    # short windows so that hypothesis-sized series reach every rule
    drift_warmup_minutes=5, minute_min_samples=2, hr_flat_s=20, spo2_flat_s=20, skin_flat_s=20,
    spo2_warning_s=20, spo2_critical_s=5, no_motion_s=40, no_motion_prewarn_s=(20, 10),
    fall_still_s=10, sos_latch_s=5, fall_latch_s=10, recovery_after_s=20, active_min_s=10,
    skin_warmup_s=30, skin_high_s=10, skin_rate_s=10, skin_high_c=36.0, fault_clear_s=10,
    ct_warn_unacclimatized_c=37.3, ct_critical_c=37.6, ct_critical_minutes=2, psi_high=3,
    psi_very_high=5, offline_warning_s=20, offline_critical_s=60, geofence_warning_s=5,
    geofence_critical_s=20,
)  # fmt: skip
HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def expected(
    det: type[Detector], ts: np.ndarray, scores: np.ndarray, vals: np.ndarray | None = None
) -> dict[AlarmKind, list[tuple[int, int]]]:
    """The reference policy's level changes for a detector's rules and default limits."""
    d = det(S)
    t = d.rules
    rules = [
        (int(t.r_kind[r]), int(t.r_sev[r]), rule.op, int(t.r_hold[r]), int(t.r_clear[r]))
        for r, rule in enumerate(t.rules)
    ]
    on, off = d.limits(None)
    keep = ~np.isnan(scores).all(axis=1)
    out = naive.levels(
        ts[keep], scores[keep], (scores if vals is None else vals)[keep], rules, on, off
    )
    res: dict[AlarmKind, list[tuple[int, int]]] = {k: [] for k in t.kinds}
    for ts_, k, lvl, _ in out:
        res[t.kinds[k]].append((ts_, lvl))
    return res


def check_quality(x: naive.Series) -> None:
    _q, fault = naive.quality(x, S)
    p, log, _ = run(x, S, cuts=[len(x.ts) // 3])
    exp = expected(QualityDetector, x.ts, fault[:, None])
    assert of_kind(log, AlarmKind.SENSOR_FAULT) == exp[AlarmKind.SENSOR_FAULT]
    present = ~np.isnan(fault)
    if present.any():
        assert p.scores(DEVICE)["quality.fault"] == pytest.approx(fault[present][-1], rel=1e-9)


def check_quality_bits(x: naive.Series) -> None:
    from detectors._buffers import EventBuffer, MinuteBuffer
    from detectors.base import batch_context
    from tests.detectors.conftest import to_batch

    q, _ = naive.quality(x, S)
    b = to_batch(x)
    det = QualityDetector(S)
    det.grow(1)
    ctx = batch_context(
        slot=np.zeros(len(b), np.int32),
        batch=b,
        events=EventBuffer(4),
        minutes=MinuteBuffer(4),
        now_ms=0,
    )
    det.update(ctx)
    np.testing.assert_array_equal(ctx.quality.astype(np.int64), q)


def check_spo2(x: naive.Series) -> None:
    q, _ = naive.quality(x, S)
    avg = naive.spo2_avg(x, q, S)
    p, log, _ = run(x, S, cuts=[len(x.ts) // 2])
    exp = expected(SpO2Detector, x.ts, np.stack([avg, avg], 1))
    assert of_kind(log, AlarmKind.SPO2_LOW) == exp[AlarmKind.SPO2_LOW]
    good = np.flatnonzero((q & naive.Q_FRESH > 0) & (q & naive.Q_SPO2 > 0))
    if len(good):  # the running window sum is exact: bit-identical to a fresh mean
        np.testing.assert_array_equal(p.scores(DEVICE)["spo2.avg"], avg[good[-1]])


def check_skin(x: naive.Series) -> None:
    q, _ = naive.quality(x, S)
    level, rate = naive.skin(x, q, S)
    good = np.flatnonzero(~np.isnan(level))
    warm = np.full(len(x.ts), np.nan)
    if len(good):
        first = x.ts[good[0]]
        ok = ~np.isnan(rate) & (x.ts - first >= S.skin_warmup_s * 1000)
        warm[ok] = rate[ok]
    p, log, _ = run(x, S)
    sc = np.stack([level, warm], 1)
    sc[np.isnan(level)] = np.nan
    exp = expected(SkinTempDetector, x.ts, sc, np.stack([level, level], 1))
    assert of_kind(log, AlarmKind.SKIN_TEMP_HIGH) == exp[AlarmKind.SKIN_TEMP_HIGH]
    if len(good):
        assert p.scores(DEVICE)["skin_temp.level"] == pytest.approx(level[good[-1]], rel=1e-9)
        assert p.scores(DEVICE)["skin_temp.rate"] == pytest.approx(
            rate[good[-1]], rel=1e-6, abs=1e-9
        )


def check_man_down(x: naive.Series) -> None:
    q, _ = naive.quality(x, S)
    sos, fall, still = naive.man_down(x, q, S)
    fresh = (q & naive.Q_FRESH) > 0
    sc = np.stack([sos, fall, fall, still, still, still], 1)
    sc[~fresh] = np.nan
    _, log, _ = run(x, S, cuts=[1, len(x.ts) // 2])
    exp = expected(ManDownDetector, x.ts, sc)
    for kind in (AlarmKind.SOS, AlarmKind.FALL, AlarmKind.NO_MOTION):
        assert of_kind(log, kind) == exp[kind], kind


def check_recovery(x: naive.Series) -> None:
    q, _ = naive.quality(x, S)
    rec = naive.recovery(x, q, S)
    _, log, _ = run(x, S)
    exp = expected(RecoveryDetector, x.ts, rec[:, None])
    assert of_kind(log, AlarmKind.HR_RECOVERY_POOR) == exp[AlarmKind.HR_RECOVERY_POOR]


def check_minute_level(x: naive.Series) -> None:
    q, _ = naive.quality(x, S)
    rows = naive.minutes(x.ts, x.hr, q, S.minute_min_samples)
    p, log, _ = run(x, S, cuts=[len(x.ts) // 4, len(x.ts) // 2])
    if not len(rows):
        return
    end, hr = rows[:, 0].astype(np.int64), rows[:, 1]
    minute = end // 60000
    ct = naive.ectemp(hr, minute, S)
    assert p.scores(DEVICE)["core_temp.ct"] == pytest.approx(ct[-1], rel=1e-12)
    exp = expected(CoreTempDetector, end, np.stack([ct, ct], 1))
    assert of_kind(log, AlarmKind.CORE_TEMP_HIGH) == exp[AlarmKind.CORE_TEMP_HIGH]
    psi = naive.psi(ct, hr, S.default_resting_hr, S)
    exp = expected(StrainDetector, end, np.stack([psi, psi], 1))
    assert of_kind(log, AlarmKind.STRAIN_HIGH) == exp[AlarmKind.STRAIN_HIGH]
    count = naive.sustained(
        hr, minute, S.hr_sustained_base_bpm - S.default_age, S.hr_sustained_hysteresis_bpm
    )
    assert p.scores(DEVICE)["hr_sustained.above"] == count[-1]
    exp = expected(SustainedHeartRateDetector, end, count[:, None])
    assert of_kind(log, AlarmKind.HR_SUSTAINED_HIGH) == exp[AlarmKind.HR_SUSTAINED_HIGH]
    cs = naive.cusum(
        hr, S.drift_warmup_minutes, S.drift_k_sigma, S.drift_sigma_floor_bpm, S.drift_rho
    )
    exp = expected(DriftDetector, end, cs[:, None])
    assert of_kind(log, AlarmKind.HR_DRIFT) == exp[AlarmKind.HR_DRIFT]
    done = cs[~np.isnan(cs)]
    if len(done):
        assert p.scores(DEVICE)["hr_drift.cusum"] == pytest.approx(done[-1], rel=1e-9, abs=1e-12)


FENCE = Geofence("P1", 30.7395, 121.3442, 40.0, (DEVICE,), None)


def check_presence(x: naive.Series) -> None:
    q, _ = naive.quality(x, S)
    fresh = (q & naive.Q_FRESH) > 0
    now = int(x.ts.max()) + 90_000
    _, log, _ = run(x, S, fences=[FENCE], now_ms=now)
    exp_off = naive.offline(
        x.ts[fresh], round(S.offline_warning_s * 1000), round(S.offline_critical_s * 1000), now
    )
    assert of_kind(log, AlarmKind.DEVICE_OFFLINE) == exp_off
    gps = fresh & ((q & naive.Q_GPS) > 0)
    d = naive.distance_m(FENCE.lat, FENCE.lon, x.lat, x.lon) - FENCE.radius_m
    score = np.where(gps, d - np.nan_to_num(x.gps_acc), np.nan)
    sc = np.stack([score, score, np.full_like(score, np.nan), np.full_like(score, np.nan)], 1)
    # a worker's slot: geofence rules at 0 m, watcher rules never
    d_ = PresenceDetector(S)
    t = d_.rules
    rules = [(int(t.r_kind[r]), int(t.r_sev[r]), ">", int(t.r_hold[r]), 0) for r in range(4)]
    h = -S.geofence_hysteresis_m
    keep = ~np.isnan(score)
    out = naive.levels(x.ts[keep], sc[keep], sc[keep], rules, [0, 0, np.inf, np.inf], [h] * 4)
    exp = [(ts_, lvl) for ts_, k, lvl, _ in out if k == 0]
    assert of_kind(log, AlarmKind.GEOFENCE_EXIT) == exp


CHECKS = [check_quality, check_quality_bits, check_spo2, check_skin, check_man_down,
          check_recovery, check_minute_level, check_presence]  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_kernel_seeded_series_matches_reference(check, seed) -> None:  # type: ignore[no-untyped-def]
    """Each kernel reproduces its reference on long seeded series with episodes."""
    check(seeded(seed))


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@HYP
@given(x=series())
def test_kernel_hypothesis_series_matches_reference(check, x) -> None:  # type: ignore[no-untyped-def]
    """Each kernel reproduces its reference on generated series (NaN, gaps, constants)."""
    check(x)


@given(lat=st.floats(30.0, 31.0), dn=st.floats(-800, 800), de=st.floats(-800, 800))
@settings(max_examples=60, deadline=None)
def test_distance_short_range_matches_haversine(lat: float, dn: float, de: float) -> None:
    """The equirectangular distance is within 5 cm of haversine up to ~1 km."""
    lat2 = lat + dn / 111_195.0
    lon2 = 121.0 + de / (111_195.0 * np.cos(np.radians(lat)))
    assert distance_m(lat, 121.0, lat2, lon2) == pytest.approx(
        float(naive.distance_m(lat, 121.0, lat2, lon2)), abs=0.05
    )
