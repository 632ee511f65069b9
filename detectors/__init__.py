"""Detectors: Numba kernels over per-device state (structure of arrays) that turn telemetry
into scores, and a policy that turns scores into alarm events. No I/O except the replay.

Contract: `DetectorPipeline.process(batch, now_ms)` advances every detector over an
`ingest.wire.SampleBatch` and returns `AlarmEvent`s (one open alarm per worker and kind:
raised, escalated, cleared). The live ingest and `permitpulse replay` share it. Who wears a
device (`WorkerProfile`) and which devices are on which permit (`Geofence`) come from the
caller. `snapshot()`/`restore()` carry the state across restarts (`detectors.repository`
stores it). Thresholds live in `DetectorSettings`, each with its source.

Names are imported lazily: importing ``detectors.config`` (as the settings do) does not
load Numba.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AlarmEvent": "detectors.models",
    "AlarmKind": "detectors.models",
    "AlarmState": "detectors.models",
    "DetectorError": "detectors.errors",
    "DetectorPipeline": "detectors.pipeline",
    "DetectorSettings": "detectors.config",
    "Geofence": "detectors.models",
    "ReplayInputError": "detectors.errors",
    "Severity": "detectors.models",
    "SnapshotError": "detectors.errors",
    "WorkerProfile": "detectors.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'detectors' has no attribute {name!r}")
