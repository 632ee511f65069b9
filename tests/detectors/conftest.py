"""Helpers for the detector tests: one device's series → batches → the pipeline."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.config import DetectorSettings
from detectors.models import AlarmKind, Geofence, WorkerProfile
from detectors.pipeline import DetectorPipeline
from ingest.wire import RECORD_DTYPE, SampleBatch
from tests.detectors.naive import Series

DEVICE = "dev-1"


def to_batch(x: Series, device: str = DEVICE, sl: slice = slice(None)) -> SampleBatch:
    ts = x.ts[sl]
    rec = np.zeros(len(ts), dtype=RECORD_DTYPE)
    rec["ts_ms"] = ts
    rec["seq"] = np.arange(len(ts))
    for col, name in (
        ("hr", "hr"), ("spo2", "spo2"), ("skin_temp", "skin"), ("motion", "motion"),
        ("lat", "lat"), ("lon", "lon"), ("gps_acc", "gps_acc"),
    ):  # fmt: skip
        rec[col] = getattr(x, name)[sl]
    rec["battery"] = np.nan
    rec["flags"] = x.flags[sl]
    return SampleBatch.from_records((device,), rec)


def run(
    x: Series,
    settings: DetectorSettings | None = None,
    *,
    cuts: Sequence[int] = (),
    profile: WorkerProfile | None = None,
    fences: Sequence[Geofence] = (),
    now_ms: int | None = None,
    pipeline: DetectorPipeline | None = None,
) -> tuple[DetectorPipeline, list[tuple[AlarmKind, int, int, float]], list[Any]]:
    """Process ``x`` in batches split at ``cuts``; returns (pipeline, level changes, events)."""
    p = pipeline or DetectorPipeline(settings or DetectorSettings())
    p.level_log = []
    if profile is not None:
        p.assign(DEVICE, profile)
    if fences:
        p.set_permits(fences)
    events = []
    bounds = [0, *sorted(set(cuts)), len(x.ts)]
    for a, b in itertools.pairwise(bounds):
        if b <= a:
            continue
        now = int(x.ts[a:b].max())
        events += p.process(to_batch(x, sl=slice(a, b)), now)
    if now_ms is not None:
        events += p.tick(now_ms)
    log = [(k, lvl, t, v) for _, k, lvl, t, v in p.level_log]
    return p, log, events


def of_kind(log: list[tuple[AlarmKind, int, int, float]], kind: AlarmKind) -> list[tuple[int, int]]:
    """(ts, level) changes of one kind."""
    return [(t, lvl) for k, lvl, t, _ in log if k == kind]
