"""Human thermo- and cardio-physiology of many workers at once (numpy arrays, one per state).

The model is deliberately simple and every coefficient is named here:

- metabolic rate and heart-rate reserve fraction per workload class (ACGIH TLV categories);
- core temperature relaxes (time constant ``CT_TAU_S``) to an equilibrium set by the metabolic
  rate and by how far the effective WBGT (site + area + clothing adjustment) exceeds the ACGIH
  TLV (acclimatised) or action limit (unacclimatised) for that rate; its rate of change is
  capped at ``CT_MAX_RATE`` (about 0.09 °C/min);
- heart rate relaxes (20 s up, 35 s down) to resting + reserve × intensity + a thermal term
  (``HR_PER_C`` bpm per °C of core temperature, cardiovascular drift) + fatigue, with an
  autocorrelated (AR(1)) biological noise;
- skin temperature follows heat, core temperature and sweating; SpO2 sits at a personal
  baseline (96-99 %) with AR(1) jitter and falls under hypoxia;
- fatigue accumulates under work and recovers at rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from firmware_sim.scenario import Clothing, Workload

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Activity:
    """What a workload class costs: metabolic rate (W), heart-rate reserve fraction, motion."""

    metabolic_w: float
    reserve: float
    motion: float


#: ACGIH TLV metabolic-rate categories (rest 115 W … very heavy 520 W).
WORKLOADS: dict[Workload, Activity] = {
    Workload.REST: Activity(115.0, 0.0, 0.05),
    Workload.LIGHT: Activity(180.0, 0.10, 0.18),
    Workload.MODERATE: Activity(300.0, 0.22, 0.35),
    Workload.HEAVY: Activity(415.0, 0.32, 0.55),
    Workload.VERY_HEAVY: Activity(520.0, 0.42, 0.80),
}
WALKING = Activity(250.0, 0.16, 0.50)
HURRYING = Activity(340.0, 0.26, 0.75)
#: Indexes into ``ACTIVITY_TABLE``: the five workloads in order, then walking, then hurrying.
ACTIVITY_TABLE: tuple[Activity, ...] = (*WORKLOADS.values(), WALKING, HURRYING)
WORKLOAD_INDEX: dict[Workload, int] = {w: i for i, w in enumerate(WORKLOADS)}
ACT_WALKING = len(WORKLOADS)
ACT_HURRYING = ACT_WALKING + 1
_TABLE = np.array([(a.metabolic_w, a.reserve, a.motion) for a in ACTIVITY_TABLE])

#: ACGIH clothing adjustment values (°C-WBGT).
CLOTHING_CAV: dict[Clothing, float] = {
    Clothing.WORK_CLOTHES: 0.0,
    Clothing.COVERALLS: 0.0,
    Clothing.POLYOLEFIN: 1.0,
    Clothing.DOUBLE_LAYER: 3.0,
    Clothing.VAPOUR_BARRIER: 11.0,
}

CT_TAU_S = 1200.0
CT_MAX_RATE = 0.0015  # °C/s = 0.09 °C/min
CT_PER_W = 0.0029  # °C of equilibrium core temperature per W above rest
CT_PER_WBGT_EXCESS = 0.10  # °C per °C-WBGT above the TLV / action limit
HR_PER_C = 25.0  # bpm per °C of core temperature above 37 °C
HR_TAU_UP_S = 20.0
HR_TAU_DOWN_S = 35.0
HR_NOISE_TAU_S = 15.0
SKIN_TAU_S = 240.0
SPO2_NOISE_TAU_S = 6.0
MOTION_NOISE_TAU_S = 4.0


def wbgt_limit(metabolic_w: F64, acclimatized: Bools) -> F64:
    """ACGIH TLV (acclimatised) or action limit (unacclimatised), °C-WBGT, for a rate in W."""
    lg = np.log10(np.maximum(metabolic_w, 100.0))
    result: F64 = np.where(acclimatized, 56.7 - 11.5 * lg, 59.9 - 14.1 * lg)
    return result


@dataclass
class Profiles:
    """Who the workers are: one entry per worker."""

    age: F64
    acclimatized: Bools
    resting_hr: F64
    fitness: F64
    cav: F64
    ct_base: F64 = field(init=False)

    def __post_init__(self) -> None:
        self.ct_base = np.full(len(self.age), 36.95)

    @property
    def hr_max(self) -> F64:
        """Tanaka: 208 − 0.7 × age."""
        result: F64 = 208.0 - 0.7 * self.age
        return result

    def __len__(self) -> int:
        return len(self.age)


@dataclass
class Drive:
    """What pushes the bodies this step, beyond their activity (incidents)."""

    heat_strain: Bools
    strain_peak_c: F64
    strain_margin_bpm: F64
    hypoxia_drop: F64  # target SpO2 drop in percentage points (0 = none)
    hypoxia_fall_tau: F64
    hypoxia_recovery_tau: F64
    hr_add: F64

    @classmethod
    def neutral(cls, n: int) -> Drive:
        return cls(
            heat_strain=np.zeros(n, dtype=bool),
            strain_peak_c=np.full(n, 39.6),
            strain_margin_bpm=np.zeros(n),
            hypoxia_drop=np.zeros(n),
            hypoxia_fall_tau=np.full(n, 35.0),
            hypoxia_recovery_tau=np.full(n, 25.0),
            hr_add=np.zeros(n),
        )


class Bodies:
    """The physiological state of every worker; ``step`` advances all of them."""

    def __init__(self, profiles: Profiles, rng: np.random.Generator) -> None:
        n = len(profiles)
        self.p = profiles
        self.p.ct_base = 36.95 + np.clip(rng.normal(0.0, 0.1, n), -0.25, 0.25)
        self.ct = self.p.ct_base.copy()
        self.hr = profiles.resting_hr.copy()
        self.hr_noise = rng.normal(0.0, 2.0, n)
        self.skin = 33.0 + rng.normal(0.0, 0.3, n)
        self.skin_noise = np.zeros(n)
        self.spo2_base = rng.uniform(96.6, 98.6, n)
        self.spo2_noise = rng.normal(0.0, 0.4, n)
        self.hypoxia = np.zeros(n)
        self.fatigue = np.zeros(n)
        self.motion_noise = np.zeros(n)
        self.motion = np.full(n, 0.05)

    def __len__(self) -> int:
        return len(self.ct)

    @property
    def hr_true(self) -> F64:
        """Heart rate including its biological variability (what a perfect sensor reads)."""
        result: F64 = np.clip(self.hr + self.hr_noise, 35.0, 215.0)
        return result

    @property
    def spo2(self) -> F64:
        result: F64 = np.clip(self.spo2_base + self.spo2_noise - self.hypoxia, 50.0, 100.0)
        return result

    def step(
        self,
        dt: float,
        *,
        activity: npt.NDArray[np.intp],
        wbgt: F64,
        drive: Drive,
        rng: np.random.Generator,
    ) -> None:
        """Advance every body by ``dt`` seconds.

        Args:
            activity: index into ``ACTIVITY_TABLE`` per worker.
            wbgt: environmental WBGT where each worker is (site + area), °C.
            drive: incident effects for this step.
            rng: the physiology random stream (drawn in a fixed order: deterministic).
        """
        n = len(self)
        metabolic, reserve, motion_level = _TABLE[activity].T
        effort = reserve * (1.25 - 0.5 * self.p.fitness)
        wbgt_eff = wbgt + self.p.cav
        working = metabolic >= 180.0
        self._step_core(dt, metabolic, wbgt_eff, working, drive)
        self._step_heart(dt, effort, wbgt_eff, working, drive, rng.standard_normal(n))
        self._step_skin(dt, effort, wbgt_eff, rng.standard_normal(n))
        self._step_spo2(dt, drive, rng.standard_normal(n))
        self._step_fatigue(dt, effort)
        phi = math.exp(-dt / MOTION_NOISE_TAU_S)
        sd = 0.3 * motion_level + 0.02
        self.motion_noise = phi * self.motion_noise + math.sqrt(
            1 - phi * phi
        ) * rng.standard_normal(n)
        self.motion = np.abs(motion_level + sd * self.motion_noise)

    def _step_core(
        self, dt: float, metabolic: F64, wbgt_eff: F64, working: Bools, drive: Drive
    ) -> None:
        excess = np.maximum(wbgt_eff - wbgt_limit(metabolic, self.p.acclimatized), 0.0)
        eq = (
            self.p.ct_base
            + CT_PER_W * (metabolic - 115.0)
            + CT_PER_WBGT_EXCESS * excess
            + 0.15 * self.fatigue
        )
        # Heat strain (failing heat dissipation, e.g. dehydration): while working the core is
        # driven towards the incident's peak; at rest only a small residual remains.
        strained = np.maximum(eq, drive.strain_peak_c + 0.3)
        eq = np.where(drive.heat_strain, np.where(working, strained, eq + 0.3), eq)
        rate = np.clip((eq - self.ct) / CT_TAU_S, -CT_MAX_RATE, CT_MAX_RATE)
        self.ct = self.ct + rate * dt

    def _step_heart(
        self,
        dt: float,
        effort: F64,
        wbgt_eff: F64,
        working: Bools,
        drive: Drive,
        z: F64,
    ) -> None:
        p = self.p
        unacclimatized = np.where(
            p.acclimatized,
            0.0,
            6.0 * np.clip((wbgt_eff - 24.0) / 6.0, 0, 1) * np.clip(effort / 0.25, 0, 1),
        )
        target = (
            p.resting_hr
            + (p.hr_max - p.resting_hr) * effort
            + HR_PER_C * (self.ct - 37.0)
            + 8.0 * self.fatigue
            + unacclimatized
            + 0.9 * self.hypoxia
            + drive.hr_add
        )
        # Cardiovascular strain of a heat-strain episode: once the core passes ~38.2 °C the
        # heart rate is pulled above the ACGIH limit 180 − age (by the incident's margin).
        floor = 180.0 - p.age + drive.strain_margin_bpm
        ramp = np.clip((self.ct - 38.2) / 0.4, 0.0, 1.0)
        pull = np.where(drive.heat_strain & working, ramp * np.maximum(floor - target, 0.0), 0.0)
        target = np.clip(target + pull, p.resting_hr - 8.0, p.hr_max)
        tau = np.where(target > self.hr, HR_TAU_UP_S, HR_TAU_DOWN_S)
        self.hr = self.hr + (target - self.hr) * (1.0 - np.exp(-dt / tau))
        phi = math.exp(-dt / HR_NOISE_TAU_S)
        sd = 2.5 + 4.0 * effort
        self.hr_noise = phi * self.hr_noise + math.sqrt(1 - phi * phi) * sd * z

    def _step_skin(self, dt: float, effort: F64, wbgt_eff: F64, z: F64) -> None:
        eq = np.clip(
            33.0 + 0.18 * (wbgt_eff - 25.0) + 0.5 * (self.ct - 37.0) - 1.0 * effort, 29.5, 37.5
        )
        self.skin = self.skin + (eq - self.skin) * (1.0 - math.exp(-dt / SKIN_TAU_S))
        phi = math.exp(-dt / 60.0)
        self.skin_noise = phi * self.skin_noise + math.sqrt(1 - phi * phi) * 0.08 * z

    def _step_spo2(self, dt: float, drive: Drive, z: F64) -> None:
        tau = np.where(drive.hypoxia_drop > self.hypoxia, drive.hypoxia_fall_tau, 1.0)
        tau = np.where(drive.hypoxia_drop < self.hypoxia, drive.hypoxia_recovery_tau, tau)
        self.hypoxia = self.hypoxia + (drive.hypoxia_drop - self.hypoxia) * (
            1.0 - np.exp(-dt / tau)
        )
        phi = math.exp(-dt / SPO2_NOISE_TAU_S)
        self.spo2_noise = phi * self.spo2_noise + math.sqrt(1 - phi * phi) * 0.5 * z

    def _step_fatigue(self, dt: float, effort: F64) -> None:
        gain = np.where(effort > 0.12, (effort - 0.12) * 1.6 / 3600.0, 0.0)
        loss = np.where(effort <= 0.12, self.fatigue / 1800.0, 0.0)
        self.fatigue = np.clip(self.fatigue + (gain - loss) * dt, 0.0, 1.0)

    @property
    def skin_true(self) -> F64:
        result: F64 = self.skin + self.skin_noise
        return result
