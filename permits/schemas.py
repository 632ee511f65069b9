"""Pydantic models of the permit API: requests (XCreate, ...Request) and replies (XRead)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from permits.models import PermitState, PermitType, SuspendReason


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointIn(_In):
    """A WGS 84 position."""

    lat: float = Field(ge=-90, le=90, description="Latitude, degrees.")
    lon: float = Field(ge=-180, le=180, description="Longitude, degrees.")

    @field_validator("lat", "lon")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be finite")
        return v


class WorkerIn(_In):
    worker_id: str = Field(min_length=1, max_length=64)
    trade: str | None = Field(
        default=None,
        description="Special-operation trade this worker performs (needs a "
        "certificate of it), e.g. 'welding_cutting'; null for helpers.",
    )


class PermitCreate(_In):
    """A new permit (draft). The level is computed from the facts, never given."""

    site_id: str = Field(min_length=1, max_length=64)
    type: PermitType
    title: str = Field(min_length=1, max_length=200)
    location: PointIn = Field(description="The work point.")
    location_text: str = Field(min_length=1, max_length=300, description="Where, in words.")
    planned_start: AwareDatetime
    planned_end: AwareDatetime
    watcher: str = Field(min_length=1, max_length=64, description="User id of the 监护人.")
    workers: list[WorkerIn] = Field(min_length=1, max_length=100)
    fields: dict[str, Any] = Field(default_factory=dict, description="Type-specific fields.")
    activities: list[str] = Field(
        default_factory=list,
        description="Activities this job involves that other jobs must keep away from "
        "(venting_flammable_gas, painting, ...).",
    )
    extra_risks: list[str] = Field(
        default_factory=list, max_length=50, description="Risks identified beyond the template."
    )
    host_permit_id: uuid.UUID | None = Field(
        default=None, description="Temporary electricity: the permit it feeds (10.8)."
    )
    coordinator: str | None = Field(
        default=None, description="User id of the SIMOPS coordinator (4.7)."
    )


class LevelPreview(_In):
    """Facts to compute a level from, without creating a permit."""

    site_id: str | None = None
    type: PermitType
    planned_start: AwareDatetime
    planned_end: AwareDatetime
    fields: dict[str, Any] = Field(default_factory=dict)


class SignRequest(_In):
    """An approval signature, made on site (4.11)."""

    position: PointIn = Field(description="Where the approver signs.")
    comment: str = Field(default="", max_length=1000)
    step: int | None = Field(
        default=None,
        ge=1,
        description="Route step (default: the first pending step the user may sign).",
    )


class RejectRequest(_In):
    reason: str = Field(min_length=1, max_length=1000)
    position: PointIn


class GasReadingIn(_In):
    substance: str = Field(min_length=1, max_length=64)
    value: float = Field(ge=0)
    unit: Literal["%vol", "%LEL", "mg/m3", "ppm"]
    lel_pct: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="LEL of the substance, % vol (flammables; default from the table).",
    )


class GasTestCreate(_In):
    taken_at: AwareDatetime = Field(description="When the sample was taken.")
    point: str = Field(min_length=1, max_length=200, description="Sampling point.")
    position: PointIn | None = None
    o2_pct: float | None = Field(default=None, ge=0, le=100)
    readings: list[GasReadingIn] = Field(default_factory=list, max_length=50)


class CheckInCreate(_In):
    position: PointIn
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)


class OverrideRequest(_In):
    reason: str = Field(min_length=1, max_length=1000)


class Conditions(_In):
    """Weather on site when work starts or resumes (8.2.6, 9.2.4, 5.2.15)."""

    wind_force: int = Field(ge=0, le=17, description="Beaufort force.")
    dense_fog: bool = False
    heavy_snow: bool = False
    rainstorm: bool = False


class StartRequest(_In):
    """Activation or resumption: what the on-shift post leader confirms on site."""

    confirmed_measures: list[str] = Field(default_factory=list)
    conditions: Conditions | None = None


class SuspendRequest(_In):
    reason_kind: SuspendReason
    reason: str = Field(min_length=1, max_length=1000)


class CompleteRequest(_In):
    """Completion acceptance (4.15)."""

    closure_checks: list[str] = Field(default_factory=list)
    position: PointIn


class CloseRequest(_In):
    closure_checks: list[str] = Field(
        default_factory=list, description="Needed when closing an expired or terminated permit."
    )


class ReasonRequest(_In):
    reason: str = Field(min_length=1, max_length=1000)


class CertificateCreate(_In):
    trade: str = Field(min_length=1, max_length=64)
    number: str = Field(min_length=1, max_length=64)
    issuer: str = Field(min_length=1, max_length=200)
    valid_until: dt.date
    review_due: dt.date | None = None


# -- replies ----------------------------------------------------------------------------------


class LevelFactRead(BaseModel):
    fact: str
    value: Any
    effect: str
    clause: str


class LevelRead(BaseModel):
    type: PermitType
    type_name: str
    level: str | None
    level_label: str | None
    permit_required: bool
    facts: list[LevelFactRead]
    notes: list[str]
    validity_cap_h: float
    validity_clause: str
    route: list[RouteStepRead]


class RouteStepRead(BaseModel):
    step: int
    role: str
    role_label: str
    kind: str
    group: int
    signed_by: str | None = None
    signed_at: dt.datetime | None = None


class ItemRead(BaseModel):
    id: str
    text: str
    clause: str = ""


class EvidenceStepRead(BaseModel):
    id: str
    phase: str
    kind: str
    text: str
    need: int
    have: int = 0


class FieldRead(BaseModel):
    name: str
    label: str
    type: str
    required: bool
    choices: list[str] = []


class TemplateRead(BaseModel):
    type: PermitType
    name: str
    version: str
    clause: str
    levels: list[str]
    fields: list[FieldRead]
    risks: list[ItemRead]
    measures: list[ItemRead]
    emergency: list[ItemRead]
    evidence_steps: list[EvidenceStepRead]
    closure_checks: list[ItemRead]
    required_trades: list[ItemRead]


class ApprovalRead(BaseModel):
    round: int
    step: int
    role: str
    kind: str
    decision: str
    user_id: str
    signed_at: dt.datetime
    lat: float
    lon: float
    distance_m: float
    comment: str


class GasTestRead(BaseModel):
    test_id: int
    taken_at: dt.datetime
    recorded_at: dt.datetime
    point: str
    analyst: str
    o2_pct: float | None
    readings: list[dict[str, Any]]
    passed: bool
    failures: list[str]


class CheckInRead(BaseModel):
    checkin_id: int
    user_id: str
    at: dt.datetime
    lat: float
    lon: float
    accuracy_m: float | None
    distance_m: float
    within: bool
    override_by: str | None
    override_reason: str | None
    warning: str | None = None


class EvidenceRead(BaseModel):
    evidence_id: int
    step: str
    sha256: str
    content_type: str
    size: int
    uploaded_by: str
    uploaded_at: dt.datetime
    taken_at: dt.datetime | None
    lat: float | None
    lon: float | None
    place_source: str


class CertificateCheckRead(BaseModel):
    phase: str
    worker_id: str
    trade: str
    number: str | None
    outcome: str
    reason: str
    source: str
    checked_at: dt.datetime
    details: dict[str, Any]


class EventRead(BaseModel):
    event_id: int
    at: dt.datetime
    kind: str
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str | None


class PermitRead(BaseModel):
    """A permit with its labels in the requested language."""

    permit_id: uuid.UUID
    number: str
    site_id: str
    type: PermitType
    type_name: str
    level: str | None
    level_label: str | None
    level_facts: list[LevelFactRead]
    state: PermitState
    state_label: str
    template_version: str
    title: str
    applicant: str
    watcher: str
    workers: list[dict[str, Any]]
    location: dict[str, float]
    location_text: str
    fields: dict[str, Any]
    activities: list[str]
    risks: list[ItemRead]
    measures: list[ItemRead]
    planned_start: dt.datetime
    planned_end: dt.datetime
    host_permit_id: uuid.UUID | None
    coordinator: str | None
    round: int
    created_at: dt.datetime
    submitted_at: dt.datetime | None
    approved_at: dt.datetime | None
    activated_at: dt.datetime | None
    suspended_at: dt.datetime | None
    suspend_reason: str | None
    completed_at: dt.datetime | None
    closed_at: dt.datetime | None
    ended_at: dt.datetime | None


class PermitDetail(PermitRead):
    """A permit with everything recorded against it."""

    route: list[RouteStepRead]
    approvals: list[ApprovalRead]
    gas_tests: list[GasTestRead]
    checkins: list[CheckInRead]
    evidence: list[EvidenceRead]
    evidence_steps: list[EvidenceStepRead]
    certificate_checks: list[CertificateCheckRead]
    events: list[EventRead]
    closure_checks: list[ItemRead]
    emergency: list[ItemRead]


class PermitPage(BaseModel):
    count: int
    permits: list[PermitRead]


class AuditEntryRead(BaseModel):
    seq: int
    at: dt.datetime
    actor: str
    action: str
    permit_id: uuid.UUID | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


class AuditVerifyRead(BaseModel):
    ok: bool
    entries: int
    head_hash: str
    first_bad_seq: int | None
    reason: str | None


class RepeatViolatorRead(BaseModel):
    key: str
    violations: int
    rules: list[str]


class KpiRead(BaseModel):
    """Key figures over a window (SPEC §6)."""

    site_id: str | None
    start: dt.datetime
    end: dt.datetime
    permits: int
    approval_lead_time_min: dict[str, float | None] = Field(
        description="Submission → approval, minutes: mean, median, p90, n."
    )
    high_risk_share: float | None = Field(
        description="Share of permits that are 特级/一级 hot work, confined space, height Ⅲ/Ⅳ "
        "or 一级 lifting."
    )
    repeat_violations_by_worker: list[RepeatViolatorRead]
    repeat_violations_by_crew: list[RepeatViolatorRead]
    alarms: int
    permit_hours: float
    alarms_per_permit_hour: float | None


class CertificateRead(BaseModel):
    worker_id: str
    trade: str
    number: str
    issuer: str
    valid_until: dt.date
    review_due: dt.date | None


LevelRead.model_rebuild()
