"""Detector alarm events → the rule engine's `AlarmFacts`: one conversion, live and replay."""

from __future__ import annotations

from collections.abc import Iterable

from detectors.models import AlarmEvent
from permits.enforcement.engine import AlarmFacts

#: Alarm changes the rules see (an acknowledgement is people's business, not the engine's).
RULE_STATES = ("raised", "escalated", "cleared")


def alarm_facts(events: Iterable[AlarmEvent]) -> list[AlarmFacts]:
    """The engine's facts for the detectors' alarm events, in the events' order."""
    return [
        AlarmFacts(
            ts_ms=e.ts_ms,
            device_id=e.device_id,
            worker_id=e.worker_id,
            kind=e.kind.value,
            severity=e.severity.label,
            state=e.state.value,
            value=e.value,
        )
        for e in events
        if e.state.value in RULE_STATES
    ]
