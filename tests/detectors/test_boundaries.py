"""Each threshold just below, at and just above its limit (default settings)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors._buffers import EventBuffer, MinuteBuffer
from detectors.base import Q_HR, Q_SKIN, Q_SPO2, batch_context
from detectors.config import DetectorSettings
from detectors.drift import DriftDetector
from detectors.models import AlarmKind, Geofence, WorkerProfile
from detectors.pipeline import DetectorPipeline
from detectors.quality import QualityDetector
from detectors.strain import StrainDetector
from ingest.wire import SampleBatch
from tests.detectors.conftest import DEVICE, of_kind, run, to_batch
from tests.detectors.naive import Series

S = DetectorSettings()
T0 = 1_717_200_000_000


def secs(n: int, step_ms: int = 1000) -> np.ndarray:
    return T0 + np.arange(n, dtype=np.int64) * step_ms


def quality_bits(x: Series) -> np.ndarray:
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
    return ctx.quality


@pytest.mark.parametrize(
    ("channel", "bit", "value", "good"),
    [
        ("hr", Q_HR, 29.9, False), ("hr", Q_HR, 30.0, True), ("hr", Q_HR, 30.1, True),
        ("hr", Q_HR, 219.9, True), ("hr", Q_HR, 220.0, True), ("hr", Q_HR, 220.1, False),
        ("spo2", Q_SPO2, 49.9, False), ("spo2", Q_SPO2, 50.0, True), ("spo2", Q_SPO2, 100.0, True),
        ("spo2", Q_SPO2, 100.1, False), ("skin", Q_SKIN, 19.9, False), ("skin", Q_SKIN, 20.0, True),
        ("skin", Q_SKIN, 42.0, True), ("skin", Q_SKIN, 42.1, False),
    ],
)  # fmt: skip
def test_quality_gross_range_boundaries(channel: str, bit: int, value: float, good: bool) -> None:
    """Gross range (SPEC §4: HR 30–220, SpO2 50–100, skin 20–42) includes its limits."""
    q = quality_bits(Series.make([T0], **{channel: [value]}))
    assert bool(q[0] & bit) is good


@pytest.mark.parametrize(("jump", "good"), [(29.5, True), (30.0, True), (30.5, False)])
def test_quality_hr_rate_of_change_boundary(jump: float, good: bool) -> None:
    """An HR change of more than 30 bpm/s is suspect; exactly 30 is not."""
    q = quality_bits(Series.make(secs(2), hr=[80.0, 80.0 + jump]))
    assert bool(q[1] & Q_HR) is good


@pytest.mark.parametrize(("held_s", "good"), [(299, True), (300, False), (301, False)])
def test_quality_hr_flat_line_boundary(held_s: int, good: bool) -> None:
    """HR identical for 300 s (hr_flat_s) is a stuck sensor from that sample on."""
    q = quality_bits(Series.make(secs(held_s + 1), hr=np.full(held_s + 1, 72.0)))
    assert bool(q[-1] & Q_HR) is good


@pytest.mark.parametrize(("acc", "good"), [(29.9, True), (30.0, True), (30.1, False)])
def test_quality_gps_accuracy_boundary(acc: float, good: bool) -> None:
    """A fix less accurate than 30 m is not used."""
    q = quality_bits(Series.make([T0], lat=[30.7], lon=[121.3], gps_acc=[acc]))
    assert bool(q[0] & 8) is good


@pytest.mark.parametrize(("value", "fires"), [(89.9, True), (90.0, False), (90.1, False)])
def test_spo2_critical_limit_boundary(value: float, fires: bool) -> None:
    """Averaged SpO2 strictly below 90 % for 15 s is critical."""
    _, log, _ = run(Series.make(secs(40), spo2=np.full(40, value)))
    crit = [t for t, lvl in of_kind(log, AlarmKind.SPO2_LOW) if lvl == 3]
    # the average exists from the 3rd sample (t0 + 2 s); 15 s later it is held
    assert crit == ([T0 + 17_000] if fires else [])


@pytest.mark.parametrize(("n", "fires"), [(17, False), (18, True), (19, True)])
def test_spo2_critical_hold_boundary(n: int, fires: bool) -> None:
    """15 s of hold: one sample short of it raises nothing."""
    _, log, _ = run(Series.make(secs(n), spo2=np.full(n, 85.0)))
    assert any(lvl == 3 for _, lvl in of_kind(log, AlarmKind.SPO2_LOW)) is fires


@pytest.mark.parametrize(("value", "fires"), [(93.9, True), (94.0, False), (94.1, False)])
def test_spo2_warning_limit_boundary(value: float, fires: bool) -> None:
    """Averaged SpO2 below 94 % for 60 s is a warning."""
    _, log, _ = run(Series.make(secs(70), spo2=np.full(70, value)))
    assert of_kind(log, AlarmKind.SPO2_LOW) == ([(T0 + 62_000, 2)] if fires else [])


def _minutes_of(hr_per_minute: list[float], spm: int = 30) -> Series:
    ts, hr = [], []
    for m, h in enumerate([*hr_per_minute, hr_per_minute[-1]]):
        for k in range(spm):
            ts.append(T0 + m * 60_000 + k * 2000)
            hr.append(h + (0.5 if k % 2 else -0.5))  # jitter: not a flat line, same mean
    return Series.make(ts, hr=hr)


@pytest.mark.parametrize(("hr", "fires"), [(139.9, False), (140.0, False), (140.1, True)])
def test_hr_sustained_limit_boundary(hr: float, fires: bool) -> None:
    """1-min mean HR strictly above 180 − age (age 40: 140) for 3 minutes is critical."""
    _, log, _ = run(_minutes_of([hr] * 3), profile=WorkerProfile("w", age=40))
    assert bool(of_kind(log, AlarmKind.HR_SUSTAINED_HIGH)) is fires


@pytest.mark.parametrize(("minutes", "fires"), [(2, False), (3, True), (4, True)])
def test_hr_sustained_minutes_boundary(minutes: int, fires: bool) -> None:
    """Three consecutive minutes over the limit are needed."""
    _, log, _ = run(_minutes_of([150.0] * minutes), profile=WorkerProfile("w", age=40))
    assert bool(of_kind(log, AlarmKind.HR_SUSTAINED_HIGH)) is fires


def _ct_run(ct: float, minutes: int, profile: WorkerProfile | None = None) -> list[tuple[int, int]]:
    """Hold the core-temperature estimate at ``ct`` (HR outside the gross range: no update)."""
    p = DetectorPipeline(S)
    if profile:
        p.assign(DEVICE, profile)
    s = p.slot(DEVICE)
    next(d for d in p.detectors if d.name == "core_temp").arrays["ct"][s] = ct
    x = Series.make(secs(minutes * 60 + 2), hr=np.full(minutes * 60 + 2, 250.0))
    _, log, _ = run(x, pipeline=p)
    return of_kind(log, AlarmKind.CORE_TEMP_HIGH)


@pytest.mark.parametrize(("ct", "fires"), [(37.99, False), (38.0, True), (38.01, True)])
def test_core_temp_unacclimatized_warning_boundary(ct: float, fires: bool) -> None:
    """CT ≥ 38.0 °C is a warning for an unacclimatised worker."""
    assert bool(_ct_run(ct, 2)) is fires


@pytest.mark.parametrize(("ct", "fires"), [(38.49, False), (38.5, True), (38.51, True)])
def test_core_temp_acclimatized_warning_boundary(ct: float, fires: bool) -> None:
    """CT ≥ 38.5 °C is a warning for an acclimatised worker."""
    assert bool(_ct_run(ct, 2, WorkerProfile("w", acclimatized=True))) is fires


@pytest.mark.parametrize(
    ("ct", "minutes", "critical"),
    [(38.99, 6, False), (39.0, 4, False), (39.0, 5, True), (39.01, 6, True)],
)
def test_core_temp_critical_boundary(ct: float, minutes: int, critical: bool) -> None:
    """CT ≥ 39.0 °C held for 4 min is critical (minute records at minute ends)."""
    levels = [lvl for _, lvl in _ct_run(ct, minutes)]
    assert (3 in levels) is critical


def _strain_levels(psi_target: float) -> list[int]:
    det = StrainDetector(S)
    det.grow(1)
    det.configure(0, WorkerProfile("w", resting_hr=60.0))
    mb = MinuteBuffer(4)
    # CT at its start value: PSI = 5·(HR − 60)/(180 − 60)
    mb.slot[0], mb.end_ts[0], mb.ct[0] = 0, T0 + 60_000, S.ct_start_c
    mb.hr[0] = 60.0 + psi_target * 120.0 / 5.0
    mb.n[0] = 1
    ctx = batch_context(
        slot=np.empty(0, np.int32),
        batch=SampleBatch.empty(),
        events=EventBuffer(4),
        minutes=mb,
        now_ms=0,
    )
    det.update(ctx)
    return [int(v) for v in ctx.events.rows()[2]]


@pytest.mark.parametrize(
    ("psi", "level"), [(6.99, None), (7.0, 2), (7.01, 2), (8.99, 2), (9.0, 3), (9.01, 3)]
)
def test_strain_psi_boundaries(psi: float, level: int | None) -> None:
    """PSI ≥ 7 is high strain (warning), ≥ 9 very high (critical)."""
    assert _strain_levels(psi) == ([] if level is None else [level])


def _drift_levels(x: float) -> list[int]:
    s = DetectorSettings(drift_hold_minutes=0)
    det = DriftDetector(s)
    det.grow(1)
    det.configure(0, None)
    a = det.arrays
    a["nb"][0], a["mean"][0], a["sigma"][0] = s.drift_warmup_minutes, 70.0, 10.0
    mb = MinuteBuffer(4)
    mb.slot[0], mb.end_ts[0], mb.hr[0], mb.n[0] = 0, T0, x, 1
    ctx = batch_context(
        slot=np.empty(0, np.int32),
        batch=SampleBatch.empty(),
        events=EventBuffer(4),
        minutes=mb,
        now_ms=0,
    )
    det.update(ctx)
    return [int(v) for v in ctx.events.rows()[2]]


@pytest.mark.parametrize(("hr", "fires"), [(124.9, False), (125.0, True), (125.1, True)])
def test_drift_cusum_h_boundary(hr: float, fires: bool) -> None:
    """CUSUM ≥ h = 5σ raises hr_drift: with σ = 10, (125 − 70)/10 − 0.5 = 5.0 exactly."""
    assert bool(_drift_levels(hr)) is fires


def _recovery(hr_rest: float) -> list[tuple[int, int]]:
    n_work, n_rest = 120, 90
    # a constant HR keeps the smoothed HR exactly on the value; effort is read from motion
    hr = np.full(n_work + n_rest, hr_rest)
    motion = np.r_[np.full(n_work, 0.5), np.full(n_rest, 0.02)]
    _, log, _ = run(Series.make(secs(len(hr)), hr=hr, motion=motion))
    return of_kind(log, AlarmKind.HR_RECOVERY_POOR)


@pytest.mark.parametrize(("hr", "fires"), [(119.9, False), (120.0, False), (120.1, True)])
def test_recovery_limit_boundary(hr: float, fires: bool) -> None:
    """HR strictly above 120 bpm one minute into the rest is poor recovery."""
    assert bool(_recovery(hr)) is fires


@pytest.mark.parametrize(
    ("still_s", "levels"),
    [(59, []), (60, [1]), (79, [1]), (80, [1, 2]), (89, [1, 2]), (90, [1, 2, 3])],
)
def test_no_motion_prewarnings_and_limit(still_s: int, levels: list[int]) -> None:
    """No motion: notice at N − 30 s, warning at N − 10 s, critical at N s (N = 90)."""
    n = still_s + 1
    _, log, _ = run(Series.make(secs(n), motion=np.full(n, 0.001)))
    assert [lvl for _, lvl in of_kind(log, AlarmKind.NO_MOTION)] == levels


@pytest.mark.parametrize(("motion", "still"), [(0.0099, True), (0.01, False), (0.0101, False)])
def test_no_motion_threshold_boundary(motion: float, still: bool) -> None:
    """Motion strictly under 0.01 g is 'no motion'."""
    _, log, _ = run(Series.make(secs(62), motion=np.full(62, motion)))
    assert bool(of_kind(log, AlarmKind.NO_MOTION)) is still


@pytest.mark.parametrize(("still_s", "critical"), [(29, False), (30, True), (31, True)])
def test_fall_then_still_escalates_after_30s(still_s: int, critical: bool) -> None:
    """A fall is a warning at once and critical after 30 s without motion."""
    n = still_s + 2
    motion = np.r_[[1.5], np.full(n - 1, 0.001)]
    flags = np.r_[[2], np.zeros(n - 1, dtype=int)]
    _, log, _ = run(Series.make(secs(n), motion=motion, flags=flags))
    levels = [lvl for _, lvl in of_kind(log, AlarmKind.FALL)]
    assert levels[0] == 2
    assert (3 in levels) is critical


def test_sos_flag_is_critical_at_once_and_clears_after_latch() -> None:
    """SOS raises critical on the flagged sample and clears 120 s after the last flag."""
    n = 200
    flags = np.zeros(n, dtype=int)
    flags[5] = 1
    _, log, _ = run(Series.make(secs(n), hr=np.full(n, 70.0) + np.arange(n) % 3, flags=flags))
    assert of_kind(log, AlarmKind.SOS) == [(T0 + 5000, 3), (T0 + 126_000, 0)]


@pytest.mark.parametrize(("value", "fires"), [(37.49, False), (37.5, True), (37.51, True)])
def test_skin_temp_level_boundary(value: float, fires: bool) -> None:
    """Smoothed skin temperature ≥ 37.5 °C for 120 s is a warning."""
    n = 130
    skin = np.full(n, value)
    _, log, _ = run(Series.make(secs(n), skin=skin))
    assert of_kind(log, AlarmKind.SKIN_TEMP_HIGH) == ([(T0 + 120_000, 2)] if fires else [])


FENCE = Geofence("P1", 30.7395, 121.3442, 50.0, (DEVICE,), None)


@pytest.mark.parametrize(
    ("gap_ms", "levels"), [(59_999, []), (60_000, [2, 0]), (120_000, [2, 3, 0])]
)
def test_device_offline_boundaries(gap_ms: int, levels: list[int]) -> None:
    """A silence of 60 s on a permit is a warning, 120 s critical; the next sample clears."""
    ts = np.array([T0, T0 + 1000, T0 + 1000 + gap_ms])
    x = Series.make(ts, lat=[30.7395] * 3, lon=[121.3442] * 3, gps_acc=[5.0] * 3)
    _, log, _ = run(x, fences=[FENCE], cuts=[1, 2])
    assert [lvl for _, lvl in of_kind(log, AlarmKind.DEVICE_OFFLINE)] == levels


def _walk(offset_m: float, kind: AlarmKind, fence: Geofence) -> list[int]:
    n = 70
    lat = np.full(n, fence.lat + (fence.radius_m + offset_m) / 111_195.0)
    x = Series.make(secs(n), lat=lat, lon=np.full(n, fence.lon), gps_acc=np.full(n, 0.0))
    _, log, _ = run(x, fences=[fence])
    return [lvl for _, lvl in of_kind(log, kind)]


@pytest.mark.parametrize(("offset", "levels"), [(-0.5, []), (0.5, [2, 3])])
def test_geofence_exit_boundary(offset: float, levels: list[int]) -> None:
    """Outside the permit circle for 10 s is a warning, 60 s critical; inside is nothing."""
    assert _walk(offset, AlarmKind.GEOFENCE_EXIT, FENCE) == levels


@pytest.mark.parametrize(("offset", "levels"), [(-0.5, []), (0.5, [2, 3])])
def test_watcher_away_boundary(offset: float, levels: list[int]) -> None:
    """The watcher away from the work point for 15 s is a warning, 60 s critical."""
    fence = Geofence("P2", 30.7395, 121.3442, 50.0, (), DEVICE)
    assert _walk(offset, AlarmKind.WATCHER_AWAY, fence) == levels


def test_settings_site_override_applies_and_validates() -> None:
    """A site's override changes that site's limit only, and contradictions are refused."""
    s = DetectorSettings(sites={"hot-plant": {"spo2_critical_pct": 88.0}})
    assert s.for_site("hot-plant").spo2_critical_pct == 88.0
    assert s.for_site("other").spo2_critical_pct == 90.0
    with pytest.raises(ValueError, match="spo2_critical_pct"):
        DetectorSettings(spo2_critical_pct=95.0)
