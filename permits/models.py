"""Domain objects of the permit system: enums of GB 30871-2022 terms and immutable records."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class PermitType(StrEnum):
    """The eight special operations of GB 30871-2022 (codes as in its Appendix B)."""

    DH = "DH"  # 动火 hot work (3.4)
    SX = "SX"  # 受限空间 confined space (3.5)
    MB = "MB"  # 盲板抽堵 blinding (3.7)
    GC = "GC"  # 高处 work at height (3.8)
    DZ = "DZ"  # 吊装 lifting (3.9)
    YD = "YD"  # 临时用电 temporary electricity (3.10)
    DT = "DT"  # 动土 excavation (3.11)
    DL = "DL"  # 断路 road breaking (3.12)


class PermitState(StrEnum):
    """Lifecycle states; the edges between them are in `permits.workflow`."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    TERMINATED = "terminated"


#: States in which work may be going on or may resume: other permits are checked against these.
LIVE_STATES = frozenset({PermitState.ACTIVE, PermitState.SUSPENDED})
#: States with a validity clock running.
TIMED_STATES = frozenset({PermitState.APPROVED, PermitState.ACTIVE, PermitState.SUSPENDED})
#: States from which nothing but closure paperwork follows.
ENDED_STATES = frozenset(
    {
        PermitState.COMPLETED,
        PermitState.CLOSED,
        PermitState.CANCELLED,
        PermitState.EXPIRED,
        PermitState.TERMINATED,
    }
)


class Role(StrEnum):
    """Roles named by GB 30871-2022 (B.1) and SPEC §1; mapped onto a company's org chart."""

    APPLICANT = "applicant"  # 作业申请人
    WATCHER = "watcher"  # 监护人
    ANALYST = "analyst"  # 分析人 (gas tests)
    POST_LEADER = "post_leader"  # 岗位当班班长 (checks the hot-work ticket before start)
    LOCAL_UNIT = "local_unit"  # 所在基层单位
    SAFETY_DEPT = "safety_dept"  # 安全管理部门
    SPECIALIST_DEPT = "specialist_dept"  # 专业职能部门
    SENIOR_LEADER = "senior_leader"  # 主管领导
    PLANT_MANAGER = "plant_manager"  # 厂长 / 总工程师
    POWER_UNIT = "power_unit"  # 配送电单位
    CS_WATER = "cs_water"  # 会签: 供水
    CS_POWER = "cs_power"  # 会签: 电力
    CS_STEAM = "cs_steam"  # 会签: 蒸汽
    CS_PROCESS = "cs_process"  # 会签: 工艺
    CS_EQUIPMENT = "cs_equipment"  # 会签: 设备
    CS_FIRE = "cs_fire"  # 会签: 消防
    CS_SAFETY = "cs_safety"  # 会签: 安全
    SYSTEM = "system"  # the scheduler and the rule engine
    ADMIN = "admin"


class SuspendReason(StrEnum):
    """Why work stopped; decides what resuming needs (GB30871.md 'Interruption')."""

    PAUSE = "pause"
    WATCHER_AWAY = "watcher_away"  # 4.10 f
    GAS_ALARM = "gas_alarm"  # 5.2.6, 6.5
    DANGER = "danger"  # 4.8
    VIOLATION = "violation"  # 4.10 e
    WEATHER = "weather"  # 8.2.6, 9.2.4
    OTHER = "other"


class StepKind(StrEnum):
    """A route step: a countersign (会签), a review or the final approval (审批)."""

    COUNTERSIGN = "countersign"
    REVIEW = "review"
    APPROVE = "approve"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class CertOutcome(StrEnum):
    """Result of a certificate verification."""

    VALID = "valid"
    INVALID = "invalid"  # the authority says no: missing, mismatched, expired, revoked
    UNVERIFIABLE = "unverifiable"  # no trustworthy answer: timeout, 5xx, malformed reply


class EvidencePhase(StrEnum):
    """When a required evidence step must be complete."""

    SUBMIT = "submit"  # documents (JSA, lift plan) before submission
    PRE_START = "pre_start"  # photos of the measures before activation
    CLOSURE = "closure"  # photos of the cleaned-up site before completion


@dataclass(frozen=True, slots=True)
class GeoPoint:
    """WGS 84 latitude and longitude in degrees."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a user id and the (company) roles they hold.

    The HTTP layer builds this from the request (today an ``X-User`` header looked up in
    ``permit_users``; later a JWT); the domain only ever sees an `Actor`.
    """

    user_id: str
    roles: frozenset[str]
    name: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(user_id="system", roles=frozenset({Role.SYSTEM}), name="scheduler")


@dataclass(frozen=True, slots=True)
class LevelFact:
    """One fact that decided a computed level, with its effect and clause."""

    fact: str
    value: Any
    effect: str
    clause: str


@dataclass(frozen=True, slots=True)
class LevelResult:
    """A computed level and the facts that decided it."""

    level: str | None
    facts: tuple[LevelFact, ...]
    permit_required: bool = True
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PermitWorker:
    """A worker on a permit; ``trade`` set = needs a special-operation certificate of it."""

    worker_id: str
    trade: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One broken rule: a rule id (see `permits.i18n.RULES`), its clause and the facts."""

    rule: str
    clause: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Permit:
    """A permit as stored. Content fields are frozen once submitted (GB 30871 4.18)."""

    permit_id: uuid.UUID
    number: str
    site_id: str
    type: PermitType
    level: str | None
    level_facts: tuple[LevelFact, ...]
    state: PermitState
    template_version: str
    title: str
    applicant: str
    watcher: str
    workers: tuple[PermitWorker, ...]
    location: GeoPoint
    location_text: str
    fields: Mapping[str, Any]
    activities: tuple[str, ...]
    risks: tuple[str, ...]
    measures: tuple[str, ...]
    planned_start: dt.datetime
    planned_end: dt.datetime
    host_permit_id: uuid.UUID | None
    coordinator: str | None
    round: int
    version: int
    created_at: dt.datetime
    submitted_at: dt.datetime | None = None
    approved_at: dt.datetime | None = None
    activated_at: dt.datetime | None = None
    suspended_at: dt.datetime | None = None
    suspend_reason: SuspendReason | None = None
    completed_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None

    @property
    def key(self) -> str:
        """Type and level, e.g. 'DH:1', or just 'SX'."""
        return f"{self.type}:{self.level}" if self.level else str(self.type)

    def party(self, user_id: str) -> bool:
        """True when the user is the applicant or the watcher of this permit."""
        return user_id in (self.applicant, self.watcher)


@dataclass(frozen=True, slots=True)
class GasReading:
    """One measured substance. Flammables in % vol with the substance's LEL in % vol;
    toxics in mg/m³ or ppm."""

    substance: str
    value: float
    unit: str
    lel_pct: float | None = None


@dataclass(frozen=True, slots=True)
class GasTest:
    test_id: int
    permit_id: uuid.UUID
    taken_at: dt.datetime
    point: str
    analyst: str
    o2_pct: float | None
    readings: tuple[GasReading, ...]
    passed: bool
    failures: tuple[Finding, ...]
    recorded_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CheckIn:
    checkin_id: int
    permit_id: uuid.UUID
    user_id: str
    at: dt.datetime
    point: GeoPoint
    accuracy_m: float | None
    distance_m: float
    within: bool
    override_by: str | None = None
    override_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Approval:
    approval_id: int
    permit_id: uuid.UUID
    round: int
    step: int
    role: str
    kind: StepKind
    decision: Decision
    user_id: str
    signed_at: dt.datetime
    point: GeoPoint
    distance_m: float
    comment: str


@dataclass(frozen=True, slots=True)
class Evidence:
    evidence_id: int
    permit_id: uuid.UUID
    step: str
    sha256: str
    content_type: str
    size: int
    uploaded_by: str
    uploaded_at: dt.datetime
    taken_at: dt.datetime | None
    point: GeoPoint | None
    place_source: str
