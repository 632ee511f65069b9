"""Configuration section of the permit domain: company policy that GB 30871-2022 leaves open.

Every value the standard fixes (levels, validity caps, gas limits, distances) lives in code with
its clause; what the standard leaves to the company ("n/s") or what SPEC.md sets as policy is
here, each field naming its source.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator


class CertificateSettings(BaseModel):
    """How special-operation certificates (特种作业操作证, GB 30871 4.9) are verified."""

    verifier: Literal["registry", "http"] = Field(
        default="registry",
        description="'registry': a local registry imported from `registry_csv`; 'http': an "
        "external authority service at `http_url` (GB 30871 4.9: valid certificates).",
    )
    registry_csv: Path | None = Field(
        default=None,
        description="CSV of the authority registry (number,trade,holder_id,holder_name,issuer,"
        "valid_until,review_due,status). Unset: an empty registry, so every certificate is "
        "unverifiable and blocks its worker.",
    )
    http_url: str | None = Field(
        default=None, description="Base URL of the authority service (GET {url}/certificates/{n})."
    )
    http_timeout_s: float = Field(default=3.0, gt=0, le=60, description="Per-request timeout.")
    http_retries: int = Field(
        default=2, ge=0, le=10, description="Retries after a timeout, a 5xx or a broken connection."
    )
    http_backoff_s: float = Field(
        default=0.2, ge=0, le=10, description="First retry delay; doubles, with jitter, per retry."
    )

    @model_validator(mode="after")
    def _http_needs_url(self) -> CertificateSettings:
        if self.verifier == "http" and not self.http_url:
            raise ValueError("certificates.verifier = 'http' needs certificates.http_url")
        return self


class PermitSettings(BaseModel):
    """Permit-domain settings: company policy where GB 30871-2022 sets no value."""

    timezone: str = Field(
        default="Asia/Shanghai",
        description="Default time zone of a site (a site's own `sites.timezone` wins); decides "
        "night, rest days and 'each new day' (GB 30871 5.1.1, 5.3).",
    )
    night_start: dt.time = Field(
        default=dt.time(22, 0),
        description="Start of night for raising hot work by one level (GB 30871 5.1.1 names "
        "night but sets no hours: company policy).",
    )
    night_end: dt.time = Field(
        default=dt.time(6, 0),
        description="End of night (exclusive), local time (GB 30871 5.1.1: company policy).",
    )
    holiday_calendar: str = Field(
        default="CN",
        description="Country of the public-holiday and adjusted-working-day calendar (the "
        "`holidays` package) for raising hot work on holidays and rest days (GB 30871 5.1.1).",
    )
    extra_rest_days: list[dt.date] = Field(
        default_factory=list,
        description="Company rest days (plant shut-down days) on top of the public calendar "
        "(GB 30871 5.1.1: company override).",
    )
    extra_work_days: list[dt.date] = Field(
        default_factory=list,
        description="Days the company works although the calendar rests (GB 30871 5.1.1: "
        "company override).",
    )
    gas_window_min: float = Field(
        default=30.0,
        gt=0,
        description="Most minutes between the gas sample and start/entry (GB 30871 5.3, 6.3: "
        "≤ 30 min).",
    )
    gas_monitoring_interval_min: float = Field(
        default=120.0,
        gt=0,
        description="Continuous-monitoring permits (特级 hot work, confined space) expect a "
        "recorded gas reading at least this often (GB 30871 6.4: every 2 h).",
    )
    gas_record_max_delay_min: float = Field(
        default=10.0,
        ge=0,
        description="How long after sampling a gas test may still be recorded (anti "
        "back-filling; SPEC §6 'cannot be filled in after the fact': company policy).",
    )
    checkin_radius_m: float = Field(
        default=50.0,
        gt=0,
        description="Most metres between the watcher's check-in (and an on-site approval) and "
        "the permit location (SPEC §6; GB 30871 4.10, 4.11 name no distance: company policy).",
    )
    checkin_max_accuracy_m: float = Field(
        default=30.0,
        gt=0,
        description="A check-in with a worse GPS accuracy is refused (company policy).",
    )
    checkin_max_age_min: float = Field(
        default=120.0,
        gt=0,
        description="A watcher check-in older than this no longer counts for activation or "
        "resumption (company policy).",
    )
    photos_per_step: int = Field(
        default=2, ge=1, description="Distinct photos each required step needs (SPEC §6: ≥ 2)."
    )
    evidence_max_bytes: int = Field(
        default=15 * 1024 * 1024, ge=1024, description="Largest evidence file accepted."
    )
    unspecified_validity_h: dict[str, float] = Field(
        default_factory=lambda: {"MB": 24.0, "DZ": 24.0, "DT": 72.0, "DL": 72.0},
        description="Validity caps where GB 30871 sets none (n/s for blinding, lifting, "
        "excavation, road breaking): company policy, hours per type code.",
    )
    due_soon_min: float = Field(
        default=30.0, gt=0, description="Flag permits this close to expiry (issue 6: 30 min)."
    )
    scheduler_enabled: bool = Field(
        default=True, description="Run the expiry / due-soon / gas-monitoring scheduler."
    )
    scheduler_interval_s: float = Field(
        default=10.0, gt=0, le=600, description="How often the scheduler looks at the clock."
    )
    start_tolerance_min: float = Field(
        default=15.0,
        ge=0,
        description="A permit may be activated this early before its planned start, and created "
        "with a planned start this far in the past (company policy).",
    )
    fall_line_radius_m: float = Field(
        default=3.0,
        gt=0,
        description="Two permits this close horizontally at different heights share a fall line "
        "(GB 30871 8.2.8 names no distance: company policy).",
    )
    simops_radius_m: float = Field(
        default=50.0,
        gt=0,
        description="Live permits this close to each other are simultaneous operations that need "
        "a named coordinator (GB 30871 4.7 names no distance: company policy).",
    )
    role_map: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Standard approval role → the company roles that may sign it (GB 30871 B.1 "
        "note 1). A role not listed maps onto itself.",
    )
    extra_reviews: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Company review steps put before the standard's final approver, keyed by "
        "'TYPE' or 'TYPE:LEVEL' (e.g. 'DH:1': ['safety_dept']).",
    )
    company_measures_file: Path | None = Field(
        default=None,
        description="YAML of a company's own safety measures per type code, added to the "
        "GB 30871 templates.",
    )
    certificates: CertificateSettings = CertificateSettings()

    @field_validator("unspecified_validity_h")
    @classmethod
    def _positive_caps(cls, v: dict[str, float]) -> dict[str, float]:
        for code, hours in v.items():
            if hours <= 0:
                raise ValueError(f"validity cap of {code} must be positive")
        return v

    @model_validator(mode="after")
    def _night_is_a_span(self) -> PermitSettings:
        if self.night_start == self.night_end:
            raise ValueError("night_start and night_end must differ")
        return self
