"""Detector vocabulary: alarm kinds, severities, lifecycle states, events and worker profiles."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, Final


class AlarmKind(StrEnum):
    """What an alarm is about; the order fixes the kind codes used inside the kernels."""

    SENSOR_FAULT = "sensor_fault"
    HR_SUSTAINED_HIGH = "hr_sustained_high"
    HR_DRIFT = "hr_drift"
    HR_RECOVERY_POOR = "hr_recovery_poor"
    CORE_TEMP_HIGH = "core_temp_high"
    STRAIN_HIGH = "strain_high"
    SKIN_TEMP_HIGH = "skin_temp_high"
    SPO2_LOW = "spo2_low"
    FALL = "fall"
    SOS = "sos"
    NO_MOTION = "no_motion"
    DEVICE_OFFLINE = "device_offline"
    GEOFENCE_EXIT = "geofence_exit"
    WATCHER_AWAY = "watcher_away"


#: Columns of the replay CSV (``permitpulse replay --telemetry``); empty cell = missing.
CSV_HEADER: Final = (
    "device_id", "ts_ms", "hr", "skin_temp", "spo2", "lat", "lon", "gps_acc", "motion",
    "battery", "flags",
)  # fmt: skip

#: Kind ↔ small integer code (kernels emit codes; Python turns them back into kinds).
KINDS: Final[tuple[AlarmKind, ...]] = tuple(AlarmKind)
KIND_CODE: Final[dict[AlarmKind, int]] = {k: i for i, k in enumerate(KINDS)}


class Severity(IntEnum):
    """Alarm severity; 0 means "no alarm". ``NOTICE`` is the man-down pre-warning."""

    NONE = 0
    NOTICE = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class AlarmState(StrEnum):
    """Lifecycle transitions of an alarm (ThingsBoard-style: active/cleared × acked)."""

    RAISED = "raised"
    ESCALATED = "escalated"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One change of one alarm: the policy's output, the rule engine's input."""

    ts_ms: int
    device_id: str
    worker_id: str | None
    kind: AlarmKind
    severity: Severity
    state: AlarmState
    value: float | None

    def to_json(self) -> dict[str, Any]:
        """The replay's JSON-lines form (key order fixed by the replay format)."""
        value = None
        if self.value is not None and math.isfinite(self.value):
            value = round(float(self.value), 3)
        return {
            "type": "alarm",
            "ts_ms": self.ts_ms,
            "device_id": self.device_id,
            "worker_id": self.worker_id,
            "kind": self.kind.value,
            "severity": self.severity.label,
            "state": self.state.value,
            "value": value,
        }


@dataclass(frozen=True, slots=True)
class WorkerProfile:
    """Who wears a device: the per-worker inputs of the thresholds (SPEC §4).

    ``None`` fields fall back to the site's defaults in `DetectorSettings`.
    """

    worker_id: str
    age: int | None = None
    acclimatized: bool = False
    resting_hr: float | None = None


@dataclass(frozen=True, slots=True)
class Geofence:
    """A permit's work area as the presence detectors see it (a circle)."""

    permit_id: str
    lat: float
    lon: float
    radius_m: float
    devices: tuple[str, ...] = ()
    watcher_device: str | None = None
    type: str = ""
    level: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
