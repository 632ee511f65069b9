"""Every injected incident leaves its signature in the samples and its record in the truth."""

from __future__ import annotations

import math

import numpy as np

from firmware_sim.geo import haversine_m
from firmware_sim.simulation import Simulation
from ingest.wire import FLAG_FALL, FLAG_SOS
from tests.firmware_sim.factories import flags, minute_means, run, scenario, series

WORK_CENTRE = (30.7399, 121.3434)


def _truth(sim: Simulation, kind: str) -> list[dict[str, object]]:
    return [r for r in sim.truth()["incidents"] if r["kind"] == kind]


def _distance(batches: list, device: str) -> np.ndarray:
    lat, lon = series(batches, device, "lat"), series(batches, device, "lon")
    return np.array(
        [
            haversine_m(a, b, *WORK_CENTRE) if not math.isnan(a) else math.nan
            for a, b in zip(lat, lon, strict=True)
        ]
    )


def test_heat_strain_drives_core_past_39_5_and_hr_above_limit() -> None:
    """Heat strain: true core temperature climbs past 38.5 and then 39.5 °C, and the 1-minute
    mean HR stays above 180 − age for minutes on end; the truth records the episode."""
    scn = scenario(
        warmup=900,
        duration=4000,
        schedule=[{"at": 0, "permits": ["DH-U"], "workload": "moderate"}],
        incidents=[{"kind": "heat_strain", "worker": "w1", "at": 60, "duration": 3600}],
    )
    sim = Simulation(scn)
    w1 = sim.worker_index["w1"]
    cts, batches = [], []
    for _ in range(3660):
        batches.append(sim.step().samples)
        cts.append(float(sim.bodies.ct[w1]))
    ct = np.array(cts)
    assert ct[60] < 38.0
    t385, t395 = int(np.argmax(ct >= 38.5)), int(np.argmax(ct >= 39.5))
    assert 0 < t385 < t395
    above = minute_means(series(batches, "u-w1", "hr")) > 180 - 45
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, above.astype(int), 0])))[::2]
    assert runs.max() >= 10  # sustained for ten minutes or more
    (record,) = _truth(sim, "heat_strain")
    assert record["device_id"] == "u-w1"
    assert record["onset_ms"] == sim.start_ms + 60_000
    core = next(c for c in sim.truth()["core_temp"] if c["device_id"] == "u-w1")
    assert max(core["core_temp_c"]) > 39.4
    assert len(core["minute_ms"]) == len(core["core_temp_c"]) == 61


def test_o2_deficient_spo2_falls_below_90_over_tens_of_seconds() -> None:
    """O2-deficient space: the entrants' SpO2 falls below 90 % within a minute but not at once;
    the attendant outside the vessel is unaffected; truth per exposed entrant."""
    scn = scenario(
        warmup=300, incidents=[{"kind": "o2_deficient", "area": "tank", "at": 120, "duration": 300}]
    )
    sim = Simulation(scn)
    batches = run(sim, 600)
    for device in ("u-t1", "u-t2"):
        spo2 = series(batches, device, "spo2")
        first_low = int(np.argmax(spo2[120:] < 90))
        assert 10 <= first_low <= 60
        assert np.nanmean(spo2[200:400]) < 88
        assert np.nanmean(spo2[500:600]) > 94  # recovered after the atmosphere cleared
    assert np.nanmin(series(batches, "u-tw", "spo2")) >= 93
    records = _truth(sim, "o2_deficient")
    assert sorted(r["device_id"] for r in records) == ["u-t1", "u-t2"]
    assert all(r["end_ms"] - r["onset_ms"] == 300_000 for r in records)


def test_fall_flags_impact_then_no_motion() -> None:
    """Fall: one sample with the fall flag and an impact spike, then near-zero motion and a
    fixed position until the worker gets up."""
    scn = scenario(incidents=[{"kind": "fall", "worker": "w2", "at": 100, "duration": 120}])
    sim = Simulation(scn)
    batches = run(sim, 300)
    f = flags(batches, "u-w2")
    assert np.flatnonzero(f & FLAG_FALL).tolist() == [100]
    motion = series(batches, "u-w2", "motion")
    assert motion[100] >= 3.0
    assert motion[101:220].max() < 0.02
    assert motion[240:300].mean() > 0.1
    x = sim.move.x[sim.worker_index["w2"]]
    assert np.isfinite(x)
    (record,) = _truth(sim, "fall")
    assert record["end_ms"] - record["onset_ms"] == 120_000


def test_sos_flag_set_while_the_button_is_held() -> None:
    """SOS: the flag is on for the hold time and nowhere else."""
    scn = scenario(incidents=[{"kind": "sos", "worker": "w3", "at": 50, "hold_s": 4}])
    batches = run(Simulation(scn), 120)
    f = flags(batches, "u-w3")
    assert np.flatnonzero(f & FLAG_SOS).tolist() == [50, 51, 52, 53]


def test_device_removed_flat_line_no_motion_skin_cools() -> None:
    """Device taken off: HR and SpO2 freeze (flat line), motion is exactly 0, skin temperature
    drifts to the air temperature; all back to normal when it is put on again."""
    scn = scenario(
        warmup=300,
        site={**scenario().site.model_dump(), "ambient_c": 24},
        incidents=[{"kind": "device_removed", "worker": "w1", "at": 60, "duration": 900}],
    )
    batches = run(Simulation(scn), 1100)
    hr = series(batches, "u-w1", "hr")
    assert np.unique(hr[61:960]).size == 1
    assert np.unique(series(batches, "u-w1", "spo2")[61:960]).size == 1
    assert np.all(series(batches, "u-w1", "motion")[61:960] == 0.0)
    skin = series(batches, "u-w1", "skin_temp")
    assert skin[959] < skin[59] - 4
    assert np.unique(hr[1000:1100]).size > 5


def test_sensor_dropout_leaves_fields_missing() -> None:
    """Sensor dropout: the named fields are missing, the others still reported."""
    scn = scenario(
        incidents=[
            {
                "kind": "sensor_dropout",
                "worker": "w2",
                "at": 30,
                "duration": 20,
                "fields": ["hr", "spo2"],
            }
        ]
    )
    batches = run(Simulation(scn), 80)
    assert np.isnan(series(batches, "u-w2", "hr")[30:50]).all()
    assert np.isnan(series(batches, "u-w2", "spo2")[30:50]).all()
    assert not np.isnan(series(batches, "u-w2", "skin_temp")[30:50]).any()
    assert not np.isnan(series(batches, "u-w2", "hr")[50:80]).any()


def test_gps_wander_walk_leaves_the_area_and_comes_back() -> None:
    """GPS wander (walk): the reported fix moves well outside the work area and back; the
    truth covers the time outside."""
    scn = scenario(
        incidents=[
            {"kind": "gps_wander", "worker": "w1", "at": 60, "duration": 120, "distance_m": 40}
        ]
    )
    sim = Simulation(scn)
    batches = run(sim, 400)
    d = _distance(batches, "u-w1")
    assert np.nanmax(d[60:200]) > 20 + 30
    assert np.nanmax(d[350:400]) < 20 + 10
    (record,) = _truth(sim, "gps_wander")
    assert record["onset_ms"] > sim.start_ms + 60_000  # once actually outside


def test_gps_wander_drift_moves_the_fix_not_the_worker() -> None:
    """GPS wander (drift): the reported position drifts out with worsening accuracy while the
    worker stays inside."""
    scn = scenario(
        incidents=[
            {"kind": "gps_wander", "worker": "w1", "at": 60, "duration": 120, "mode": "drift"}
        ]
    )
    sim = Simulation(scn)
    batches = run(sim, 150)
    w1 = sim.worker_index["w1"]
    assert sim.areas[0].shape.inside(float(sim.move.x[w1]), float(sim.move.y[w1]))
    assert _distance(batches, "u-w1")[140] > 30
    acc = series(batches, "u-w1", "gps_acc")
    assert acc[140] > 3 * acc[50]


def test_watcher_away_walks_off_and_returns() -> None:
    """Watcher walking away: the watcher goes well beyond the area, stays, and comes back."""
    scn = scenario(
        incidents=[
            {"kind": "watcher_away", "worker": "ww", "at": 30, "duration": 200, "distance_m": 60}
        ]
    )
    sim = Simulation(scn)
    batches = run(sim, 420)
    d = _distance(batches, "u-ww")
    assert np.nanmax(d[100:230]) > 60
    assert d[415] < 25
    (record,) = _truth(sim, "watcher_away")
    assert record["device_id"] == "u-ww"


def test_battery_death_drains_then_silences_the_device() -> None:
    """Battery death: the battery runs down over the warning time, the device stops sending at
    the incident time and a status change says so."""
    scn = scenario(
        incidents=[{"kind": "battery_death", "worker": "w3", "at": 200, "warning_s": 100}]
    )
    sim = Simulation(scn)
    statuses = []
    batteries = []
    for _ in range(260):
        tick = sim.step()
        statuses += [(tick.index, s.state) for s in tick.status if s.device_id == "u-w3"]
        hit = np.flatnonzero(tick.samples.dev == sim.device_index["u-w3"])
        batteries.append(float(tick.samples.battery[hit[0]]) if len(hit) else math.nan)
    b = np.array(batteries)
    assert b[99] > 30
    assert b[190] <= 10
    assert np.isnan(b[200:]).all()
    assert statuses == [(200, "dead")]
    (record,) = _truth(sim, "battery_death")
    assert record["onset_ms"] == sim.start_ms + 200_000


def test_truth_records_have_the_scoring_keys() -> None:
    """Each truth record carries device_id, kind, onset_ms and end_ms (plus worker_id)."""
    sim = Simulation(scenario(incidents=[{"kind": "sos", "worker": "w1", "at": 5}]))
    run(sim, 30)
    (record,) = sim.truth()["incidents"]
    assert set(record) == {"device_id", "worker_id", "kind", "onset_ms", "end_ms"}
    assert record["kind"] == "sos"


def test_clock_skew_and_drift_shift_only_that_devices_timestamps() -> None:
    """A skewed device stamps its samples with its own clock; the others with true time."""
    workers = [
        {"id": "w1", "device": "u-w1", "clock_skew_s": 2.5, "clock_drift_ppm": 1000},
        {"id": "w2", "device": "u-w2"},
    ]
    sim = Simulation(scenario(workers=workers, permits=[]))
    batches = run(sim, 101)
    true_ms = sim.start_ms + 100_000
    assert series(batches, "u-w2", "ts_ms")[100] == true_ms
    assert series(batches, "u-w1", "ts_ms")[100] == true_ms + 2500 + 100  # 1000 ppm of 100 s
