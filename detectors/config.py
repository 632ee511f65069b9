"""Configuration section of the detectors: every threshold with its source.

Physiological limits are not in GB 30871; they come from occupational-physiology norms
(SPEC.md §4) and are configurable per site (`DetectorSettings.sites`) and per worker (age,
acclimatisation and resting heart rate in `detectors.models.WorkerProfile`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator


def _f(default: float, source: str, **kw: Any) -> Any:
    return Field(default=default, description=source, **kw)


class DetectorSettings(BaseModel):
    """Thresholds of the detector layer; each field's description names its source."""

    # ---------------------------------------------------------------- signal quality
    hr_min_bpm: float = _f(30.0, "SPEC.md §4 signal quality: gross range HR 30–220 bpm (QARTOD).")
    hr_max_bpm: float = _f(220.0, "SPEC.md §4 signal quality: gross range HR 30–220 bpm (QARTOD).")
    spo2_min_pct: float = _f(
        50.0,
        "SPEC.md §4 signal quality: gross range SpO2 50–100 %. At least 1 %: the SpO2 "
        "window's running sum is exact only for values in 1–100 % (detectors/spo2.py).",
        ge=1,
        le=100,
    )
    spo2_max_pct: float = _f(
        100.0, "SPEC.md §4 signal quality: gross range SpO2 50–100 % (at most 100 %).", le=100
    )
    skin_min_c: float = _f(20.0, "SPEC.md §4 signal quality: gross range skin 20–42 °C.")
    skin_max_c: float = _f(42.0, "SPEC.md §4 signal quality: gross range skin 20–42 °C.")
    hr_flat_s: float = _f(
        300.0,
        "QARTOD flat-line test (SPEC.md §4); company policy: the real recordings hold HR "
        "unchanged for up to 64 s at rest, so 300 s of identical values is a stuck sensor.",
        gt=0,
    )
    spo2_flat_s: float = _f(
        900.0,
        "QARTOD flat-line test; company policy: integer SpO2 stays at one value for up to "
        "113 s in the real recordings (and longer at 99-100 % at rest).",
        gt=0,
    )
    skin_flat_s: float = _f(900.0, "QARTOD flat-line test; company policy.", gt=0)
    hr_roc_bpm_s: float = _f(
        30.0,
        "QARTOD rate-of-change test; company policy (real recordings: at most 11 bpm/s).",
        gt=0,
    )
    spo2_roc_pct_s: float = _f(
        15.0,
        "QARTOD rate-of-change test; company policy (real recordings: at most 11 %/s).",
        gt=0,
    )
    skin_roc_c_s: float = _f(1.0, "QARTOD rate-of-change test; company policy.", gt=0)
    gap_s: float = _f(
        10.0,
        "QARTOD gap: after this long without a sample the rate/flat tests restart.",
        gt=0,
    )
    gps_acc_max_m: float = _f(
        30.0, "SPEC.md §4 signal quality: GPS fixes less accurate than this are not used.", gt=0
    )
    fault_tau_s: float = _f(
        30.0,
        "sensor_fault: time constant of the bad-sample fraction (QARTOD, company policy).",
        gt=0,
    )
    fault_on_fraction: float = _f(
        0.5, "sensor_fault raised when a channel's bad fraction reaches this.", gt=0, le=1
    )
    fault_off_fraction: float = _f(
        0.2, "sensor_fault cleared when every channel's bad fraction is below this.", ge=0, le=1
    )
    fault_clear_s: float = _f(30.0, "sensor_fault: seconds below the off fraction to clear.", ge=0)

    # ---------------------------------------------------------------- aggregation
    minute_min_samples: int = Field(
        default=10,
        ge=1,
        description="1-minute aggregate: fewest good HR samples for a valid minute mean "
        "(SPEC.md §4: CUSUM and ECTemp run on 1-min aggregates).",
    )

    # ---------------------------------------------------------------- heart rate, sustained
    default_age: int = Field(
        default=40, ge=16, le=80, description="Age used when a worker's is unknown (policy)."
    )
    hr_sustained_base_bpm: float = _f(
        180.0, "ACGIH TLV heat-strain criteria: sustained HR limit = 180 − age (SPEC.md §4)."
    )
    hr_sustained_minutes: int = Field(
        default=3,
        ge=1,
        description="ACGIH / SPEC.md §4: limit exceeded for ≥ 3 consecutive 1-min means.",
    )
    hr_sustained_hysteresis_bpm: float = _f(
        5.0, "hr_sustained_high: minutes must fall this far under the limit to reset.", ge=0
    )

    # ---------------------------------------------------------------- recovery
    recovery_limit_bpm: float = _f(
        120.0, "ACGIH: HR 1 min after a peak effort / start of rest > 120 bpm (SPEC.md §4)."
    )
    recovery_after_s: float = _f(60.0, "ACGIH: recovery HR is taken 1 min into the rest.", gt=0)
    recovery_clear_bpm: float = _f(
        110.0, "hr_recovery_poor clears when smoothed HR falls to this (policy).", gt=0
    )
    rest_motion_g: float = _f(
        0.05, "Motion below this (g RMS, docs/wire-format.md) counts as rest (policy).", gt=0
    )
    active_min_s: float = _f(
        60.0, "A rest only starts a recovery check after this long active (policy).", ge=0
    )
    hr_smooth_s: float = _f(10.0, "Time constant of the smoothed HR used for recovery.", gt=0)

    # ---------------------------------------------------------------- core temperature
    ct_start_c: float = _f(37.0, "ECTemp (Buller et al. 2013): initial core temperature 37.0 °C.")
    ct_hr_min_bpm: float = _f(40.0, "ECTemp: skip the update when HR is outside 40–240 bpm.")
    ct_hr_max_bpm: float = _f(240.0, "ECTemp: skip the update when HR is outside 40–240 bpm.")
    ct_warn_unacclimatized_c: float = _f(
        38.0, "ACGIH / SPEC.md §4: core_temp_high warning for unacclimatised workers."
    )
    ct_warn_acclimatized_c: float = _f(
        38.5, "ACGIH / SPEC.md §4: core_temp_high warning for acclimatised workers."
    )
    ct_critical_c: float = _f(39.0, "SPEC.md §4 (SlateSafety example): critical at ≥ 39.0 °C…")
    ct_critical_minutes: float = _f(4.0, "…held for 4 min (SPEC.md §4).", ge=0)
    ct_hysteresis_c: float = _f(0.2, "core_temp_high clears this far under the limit (policy).")

    # ---------------------------------------------------------------- strain
    psi_high: float = _f(7.0, "Moran 1998 PSI ≥ 7: high strain (warning), SPEC.md §4.")
    psi_very_high: float = _f(9.0, "Moran 1998 PSI ≥ 9: very high strain (critical).")
    psi_hysteresis: float = _f(0.5, "strain_high clears this far under the limit (policy).", ge=0)
    psi_ct_max_c: float = _f(39.5, "Moran 1998: PSI = 5·ΔCT/(39.5 − CT0) + …")
    psi_hr_max_bpm: float = _f(180.0, "Moran 1998: … + 5·ΔHR/(180 − HR0).")
    default_resting_hr: float = _f(
        70.0, "HR0 of PSI when the worker's resting HR is unknown (policy).", gt=30, lt=120
    )

    # ---------------------------------------------------------------- heart rate, statistical
    drift_warmup_minutes: int = Field(
        default=30,
        ge=5,
        description="hr_drift: valid 1-min means that form the worker's baseline (explicit "
        "warm-up, SPEC.md §4).",
    )
    drift_k_sigma: float = _f(0.5, "SPEC.md §4: CUSUM reference value k = 0.5σ.", ge=0)
    drift_h_sigma: float = _f(5.0, "SPEC.md §4: CUSUM decision interval h = 5σ (ARL0≈465).", gt=0)
    drift_sigma_floor_bpm: float = _f(
        10.0,
        "hr_drift: lower bound of the baseline σ of 1-min means (policy: a working person's "
        "1-min means vary by ≥ 10 bpm; with 5 bpm the real Empatica session false-alarmed).",
        gt=0,
    )
    drift_rho: float = _f(
        0.82,
        "hr_drift: lag-1 autocorrelation ρ of 1-min HR means at work, for the long-run σ "
        "of the CUSUM, σ·√((1+ρ)/(1−ρ)) (AR(1) variance inflation for CUSUM on autocorrelated "
        "data; Montgomery, Introduction to Statistical Quality Control). A site value, not "
        "a per-worker estimate: 29 warm-up pairs scatter ρ̂ by ~0.1 where the factor is "
        "steepest. 0.82 is the most sensitive value on a 0.02 grid whose pooled false-alarm "
        "rate stays ≤ 0.04 per worker-hour (95 % upper bound) on the validation fleets of "
        "`benchmarks/eval_detectors.py --validation 10` (seeds the evaluation does not use); "
        "warm-up ρ̂ there: median 0.89; real Empatica session 0.68. 0 disables.",
        ge=0,
        lt=1,
    )
    drift_hold_minutes: float = _f(
        5.0,
        "hr_drift: the CUSUM must stay over h this long (policy: a short burst of work is "
        "not a drift; the real Empatica session has a 4-minute one).",
        ge=0,
    )
    drift_clear_sigma: float = _f(2.5, "hr_drift clears when the CUSUM falls under this.", ge=0)

    # ---------------------------------------------------------------- skin temperature
    skin_high_c: float = _f(37.5, "skin_temp_high level (company policy; SPEC.md §4).")
    skin_high_s: float = _f(120.0, "skin_temp_high: seconds over the level (policy).", ge=0)
    skin_rate_c_min: float = _f(1.0, "skin_temp_high rate, °C/min (company policy).", gt=0)
    skin_rate_s: float = _f(120.0, "skin_temp_high: seconds over the rate (policy).", ge=0)
    skin_tau_s: float = _f(60.0, "Smoothing time constant of skin temperature.", gt=0)
    skin_warmup_s: float = _f(
        300.0, "No rate decision in the first 5 min of skin data (donning the device).", ge=0
    )
    skin_hysteresis_c: float = _f(0.3, "skin_temp_high clears this far under the level.", ge=0)

    # ---------------------------------------------------------------- SpO2
    spo2_avg_s: float = _f(
        10.0, "SPEC.md §4 / clinical alarm practice: 10–15 s averaged SpO2.", gt=0
    )
    spo2_min_samples: int = Field(
        default=3, ge=1, description="Fewest good samples in the averaging window."
    )
    spo2_critical_pct: float = _f(90.0, "SPEC.md §4: averaged SpO2 < 90 % …")
    spo2_critical_s: float = _f(15.0, "… for 15 s → spo2_low critical (SPEC.md §4).", ge=0)
    spo2_warning_pct: float = _f(94.0, "SPEC.md §4: averaged SpO2 < 94 % …")
    spo2_warning_s: float = _f(60.0, "… for 60 s → spo2_low warning (SPEC.md §4).", ge=0)
    spo2_hysteresis_pct: float = _f(1.0, "spo2_low clears this far over the limit (policy).")
    spo2_clear_s: float = _f(10.0, "spo2_low: seconds back over the limit to clear.", ge=0)

    # ---------------------------------------------------------------- man-down
    no_motion_s: float = _f(
        90.0, "SPEC.md §4 man-down: no motion for N s → critical (Blackline pattern).", gt=30
    )
    no_motion_prewarn_s: tuple[float, float] = Field(
        default=(30.0, 10.0),
        description="SPEC.md §4: pre-warnings at N−30 s (notice) and N−10 s (warning).",
    )
    still_motion_g: float = _f(
        0.01,
        "Motion under this (g RMS) is 'no motion' (policy; a still wrist at rest in the real "
        "Empatica session reads 0.01–0.03 g).",
        gt=0,
    )
    motion_gap_s: float = _f(10.0, "A longer gap in motion data restarts the still timer.", gt=0)
    fall_still_s: float = _f(
        30.0, "fall escalates to critical after a fall flag and this long without motion.", gt=0
    )
    sos_latch_s: float = _f(120.0, "sos stays raised this long after the last SOS flag.", ge=0)
    fall_latch_s: float = _f(
        120.0, "fall clears this long after the last fall flag, once moving again.", ge=0
    )

    # ---------------------------------------------------------------- presence
    offline_warning_s: float = _f(
        60.0, "SPEC.md §5: device offline > 60 s during a permit → warning.", gt=0
    )
    offline_critical_s: float = _f(
        120.0, "SPEC.md §5: device offline > 120 s → critical (evacuate in a confined space).", gt=0
    )
    geofence_warning_s: float = _f(10.0, "GB 30871 4.10: outside the permit area → warning.", ge=0)
    geofence_critical_s: float = _f(60.0, "presence: warning → critical by duration.", ge=0)
    geofence_hysteresis_m: float = _f(5.0, "Back inside by this many metres to clear.", ge=0)
    watcher_warning_s: float = _f(
        15.0, "GB 30871 4.10 f: the watcher must stay at the work point → warning.", ge=0
    )
    watcher_critical_s: float = _f(
        60.0, "GB 30871 4.10 f: watcher away → critical (suspend the permit).", ge=0
    )

    # ---------------------------------------------------------------- execution
    threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Performance, not safety: threads that run a batch of at least "
        "`thread_min_samples` samples, split by device into 4 parts per thread that free "
        "threads take in turn (the kernels release the GIL). Results do not depend on it "
        "(slots are independent). 1 on a machine whose cores are busy anyway.",
    )
    thread_min_samples: int = Field(
        default=20_000,
        ge=1,
        description="Performance: smaller batches run on the calling thread only (starting "
        "a thread costs more than a small batch's detector pass).",
    )

    # ---------------------------------------------------------------- per site
    sites: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-site overrides: site id → {field: value} of this section.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DetectorSettings:
        pairs = [
            ("hr_min_bpm", "hr_max_bpm"),
            ("spo2_min_pct", "spo2_max_pct"),
            ("skin_min_c", "skin_max_c"),
            ("ct_hr_min_bpm", "ct_hr_max_bpm"),
            ("fault_off_fraction", "fault_on_fraction"),
            ("spo2_critical_pct", "spo2_warning_pct"),
            ("psi_high", "psi_very_high"),
            ("offline_warning_s", "offline_critical_s"),
            ("geofence_warning_s", "geofence_critical_s"),
            ("watcher_warning_s", "watcher_critical_s"),
        ]
        for lo, hi in pairs:
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"{lo} must not exceed {hi}")
        first, second = self.no_motion_prewarn_s
        if not self.no_motion_s > first > second > 0:
            raise ValueError("no_motion_prewarn_s must be (a, b) with no_motion_s > a > b > 0")
        return self

    def for_site(self, site: str | None) -> DetectorSettings:
        """These settings with the site's overrides applied (validated)."""
        overrides = self.sites.get(site or "", {})
        if not overrides:
            return self
        data = self.model_dump()
        data.update(overrides)
        return DetectorSettings.model_validate(data)
