"""The alarm lifecycle (ThingsBoard-style, SPEC.md §4): one open alarm per (worker, kind),
raised → escalated (severity rises) → cleared, acknowledged separately; every change is an
`AlarmEvent`. A worker with several devices has one alarm per kind: its severity is the
highest level any of the worker's devices reports; it clears when all are back to 0."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.models import AlarmEvent, AlarmKind, AlarmState, Severity


@dataclass(slots=True)
class OpenAlarm:
    """An active alarm."""

    kind: AlarmKind
    subject: str
    raised_ms: int
    severity: Severity
    peak: Severity
    acknowledged: bool = False
    levels: dict[str, int] = field(default_factory=dict)


def subject_of(device_id: str, worker_id: str | None) -> str:
    """Whose alarm it is: the worker, or the device itself when nobody is assigned."""
    return f"worker:{worker_id}" if worker_id is not None else f"device:{device_id}"


class AlarmBook:
    """Open alarms and their transitions."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, AlarmKind], OpenAlarm] = {}

    def apply(
        self,
        *,
        ts_ms: int,
        device_id: str,
        worker_id: str | None,
        kind: AlarmKind,
        level: int,
        value: float | None,
    ) -> AlarmEvent | None:
        """A device's level for ``kind`` changed to ``level``; the event it causes, if any."""
        key = (subject_of(device_id, worker_id), kind)
        alarm = self.open.get(key)
        if alarm is None:
            if level <= 0:
                return None
            sev = Severity(level)
            alarm = OpenAlarm(kind, key[0], ts_ms, sev, sev, levels={device_id: level})
            self.open[key] = alarm
            return self._event(ts_ms, device_id, worker_id, alarm, AlarmState.RAISED, value)
        if level > 0:
            alarm.levels[device_id] = level
        else:
            alarm.levels.pop(device_id, None)
        new = max(alarm.levels.values(), default=0)
        if new == 0:
            del self.open[key]
            return self._event(ts_ms, device_id, worker_id, alarm, AlarmState.CLEARED, value)
        if new > alarm.severity:
            alarm.severity = Severity(new)
            alarm.peak = max(alarm.peak, alarm.severity)
            return self._event(ts_ms, device_id, worker_id, alarm, AlarmState.ESCALATED, value)
        alarm.severity = Severity(new)  # a lower level while still active is not an event
        return None

    def acknowledge(
        self, *, ts_ms: int, device_id: str, worker_id: str | None, kind: AlarmKind
    ) -> AlarmEvent | None:
        """Mark an open alarm acknowledged (None when there is none, or it already is)."""
        alarm = self.open.get((subject_of(device_id, worker_id), kind))
        if alarm is None or alarm.acknowledged:
            return None
        alarm.acknowledged = True
        return self._event(ts_ms, device_id, worker_id, alarm, AlarmState.ACKNOWLEDGED, None)

    @staticmethod
    def _event(
        ts_ms: int,
        device_id: str,
        worker_id: str | None,
        alarm: OpenAlarm,
        state: AlarmState,
        value: float | None,
    ) -> AlarmEvent:
        return AlarmEvent(ts_ms, device_id, worker_id, alarm.kind, alarm.severity, state, value)

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": a.kind.value,
                "subject": a.subject,
                "raised_ms": a.raised_ms,
                "severity": int(a.severity),
                "peak": int(a.peak),
                "acknowledged": a.acknowledged,
                "levels": a.levels,
            }
            for a in self.open.values()
        ]

    @classmethod
    def from_json(cls, rows: list[dict[str, Any]]) -> AlarmBook:
        book = cls()
        for r in rows:
            kind = AlarmKind(r["kind"])
            book.open[(r["subject"], kind)] = OpenAlarm(
                kind,
                r["subject"],
                int(r["raised_ms"]),
                Severity(r["severity"]),
                Severity(r["peak"]),
                bool(r["acknowledged"]),
                {str(k): int(v) for k, v in r["levels"].items()},
            )
        return book
