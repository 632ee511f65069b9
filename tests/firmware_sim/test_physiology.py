"""Physiology: ranges, autocorrelation and dynamics (heart rate follows load within a minute,
core temperature moves at most ~0.1 °C per minute)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.simulation import Simulation
from tests.firmware_sim.factories import minute_means, run, scenario, series


def test_simulation_quiet_work_stays_in_physiological_ranges() -> None:
    """An hour of ordinary work: HR, SpO2, skin temperature, motion, battery and position in
    realistic ranges; SpO2 sits at 96-99 % with jitter."""
    sim = Simulation(scenario(warmup=600))
    batches = run(sim, 3600)
    hr = np.concatenate([b.hr for b in batches])
    spo2 = np.concatenate([b.spo2 for b in batches])
    skin = np.concatenate([b.skin_temp for b in batches])
    motion = np.concatenate([b.motion for b in batches])
    battery = np.concatenate([b.battery for b in batches])
    assert hr.min() >= 45
    assert hr.max() <= 160
    assert spo2.min() >= 93
    assert spo2.max() <= 100
    assert 96 <= np.median(spo2) <= 99
    assert spo2.std() > 0.3  # jitter, not a constant
    assert skin.min() >= 30
    assert skin.max() <= 37
    assert motion.min() >= 0
    assert battery.min() >= 0
    assert battery.max() <= 100
    lat = np.concatenate([b.lat for b in batches])
    assert abs(np.nanmean(lat) - 30.7393) < 0.002


def test_heart_rate_rest_to_heavy_responds_within_a_minute() -> None:
    """After a switch from rest to heavy work, HR has made most of its rise within 60 s."""
    scn = scenario(
        warmup=300,
        workers=[{"id": "w1", "device": "u-w1", "age": 40, "resting_hr": 65, "workload": "rest"}],
        permits=[],
        schedule=[{"at": 300, "workers": ["w1"], "workload": "heavy"}],
    )
    hr = series(run(Simulation(scn), 900), "u-w1", "hr")
    before = hr[240:300].mean()
    at_one_minute = hr[345:375].mean()
    settled = hr[600:900].mean()
    assert settled - before > 25
    assert (at_one_minute - before) / (settled - before) > 0.75


def test_heart_rate_heavy_to_rest_recovers_within_minutes() -> None:
    """HR falls back towards resting after heavy work stops (recovery)."""
    scn = scenario(
        warmup=900,
        workers=[{"id": "w1", "device": "u-w1", "age": 40, "resting_hr": 65, "workload": "heavy"}],
        permits=[],
        schedule=[{"at": 120, "workers": ["w1"], "workload": "rest"}],
    )
    hr = series(run(Simulation(scn), 600), "u-w1", "hr")
    assert hr[60:120].mean() - hr[300:420].mean() > 25
    assert hr[300:420].mean() < 90


def test_heart_rate_noise_is_autocorrelated() -> None:
    """Beat-to-beat noise is not white: detrended HR has a lag-1 autocorrelation above 0.5."""
    hr = series(run(Simulation(scenario(warmup=900)), 1800), "u-w2", "hr")
    resid = hr - np.convolve(hr, np.ones(121) / 121, mode="same")
    resid = resid[100:-100]
    r1 = np.corrcoef(resid[:-1], resid[1:])[0, 1]
    assert r1 > 0.5


def test_core_temperature_moves_at_most_a_tenth_per_minute() -> None:
    """Under heat strain and in recovery the true core temperature never changes by more than
    0.1 °C in a minute."""
    scn = scenario(
        site={**scenario().site.model_dump(), "wbgt_c": 31},
        schedule=[
            {"at": 0, "permits": ["DH-U"], "workload": "very_heavy"},
            {"at": 1800, "permits": ["DH-U"], "workload": "rest"},
        ],
        incidents=[{"kind": "heat_strain", "worker": "w1", "at": 60, "duration": 1800}],
        duration=3600,
    )
    sim = Simulation(scn)
    cts = []
    for _ in range(3600):
        sim.step()
        cts.append(sim.bodies.ct.copy())
    ct = np.array(cts)
    per_minute = np.abs(ct[60:] - ct[:-60])
    assert per_minute.max() <= 0.1
    w1 = sim.worker_index["w1"]
    assert ct[:, w1].max() > 38.8  # it did rise
    assert ct[-1, w1] < ct[:, w1].max() - 0.5  # and it recovers at rest


def test_core_temperature_heat_raises_equilibrium() -> None:
    """The same work in more heat ends with a higher core temperature."""

    def final_ct(wbgt: float) -> float:
        site = scenario().site.model_dump()
        sim = Simulation(scenario(site={**site, "wbgt_c": wbgt}, warmup=5400))
        return float(sim.bodies.ct[sim.worker_index["w2"]])

    assert final_ct(33) > final_ct(20) + 0.3


@settings(max_examples=20, deadline=None)
@given(
    age=st.integers(18, 70),
    resting=st.floats(45, 95),
    fitness=st.floats(0, 1),
    acclimatized=st.booleans(),
    workload=st.sampled_from(["rest", "light", "moderate", "heavy", "very_heavy"]),
    wbgt=st.floats(15, 34),
)
def test_simulation_any_profile_stays_plausible(
    age: int, resting: float, fitness: float, acclimatized: bool, workload: str, wbgt: float
) -> None:
    """For any worker profile, workload and heat, readings stay within what a sensor can
    report (gross-range limits of SPEC §4) and the core temperature within 36-40.5 °C."""
    worker = {
        "id": "w1",
        "device": "u-w1",
        "age": age,
        "resting_hr": resting,
        "fitness": fitness,
        "acclimatized": acclimatized,
        "workload": workload,
    }
    site = scenario().site.model_dump()
    sim = Simulation(scenario(workers=[worker], permits=[], site={**site, "wbgt_c": wbgt}))
    batches = run(sim, 900)
    hr = np.concatenate([b.hr for b in batches])
    assert hr.min() >= 30
    assert hr.max() <= 220
    skin = np.concatenate([b.skin_temp for b in batches])
    assert skin.min() >= 20
    assert skin.max() <= 42
    assert sim.bodies.ct.min() >= 36.0
    assert sim.bodies.ct.max() <= 40.5
    assert minute_means(hr).max() <= 208 - 0.7 * age + 5
