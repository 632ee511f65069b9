"""The pipeline's batch split across threads: by device, and invisible in the results."""

from __future__ import annotations

import numpy as np

from detectors.config import DetectorSettings
from detectors.models import Geofence
from detectors.pipeline import DetectorPipeline
from ingest.wire import RECORD_DTYPE, SampleBatch
from tests.detectors.strategies import seeded

LAT, LON = 30.7395, 121.3442


def fleet_batches(n_dev: int, cuts: int) -> tuple[tuple[str, ...], list[SampleBatch]]:
    """Seeded one-device series interleaved in time order, cut into ``cuts`` batches."""
    devices = tuple(f"dev-{d}" for d in range(n_dev))
    parts = []
    for d in range(n_dev):
        x = seeded(d + 1)
        rec = np.zeros(len(x.ts), dtype=RECORD_DTYPE)
        rec["dev"], rec["ts_ms"], rec["seq"] = d, x.ts + 137 * d, np.arange(len(x.ts))
        for col, name in (("hr", "hr"), ("spo2", "spo2"), ("skin_temp", "skin"),
                          ("motion", "motion"), ("lat", "lat"), ("lon", "lon"),
                          ("gps_acc", "gps_acc"), ("flags", "flags")):  # fmt: skip
            rec[col] = getattr(x, name)
        parts.append(rec)
    rec = np.concatenate(parts)
    rec = rec[np.argsort(rec["ts_ms"], kind="stable")]
    return devices, [SampleBatch.from_records(devices, r) for r in np.array_split(rec, cuts)]


def run_fleet(threads: int) -> tuple[DetectorPipeline, list[dict[str, object]]]:
    devices, batches = fleet_batches(7, 5)
    p = DetectorPipeline(
        DetectorSettings(drift_warmup_minutes=5, threads=threads, thread_min_samples=1)
    )
    p.set_permits([Geofence("P", LAT, LON, 60.0, devices[1:], devices[0])])
    p.level_log = []
    events = []
    for b in batches:
        events += [e.to_json() for e in p.process(b, int(b.ts_ms.max()))]
    events += [e.to_json() for e in p.tick(int(batches[-1].ts_ms.max()) + 200_000)]
    return p, events


def test_pipeline_split_across_threads_same_events_levels_and_state() -> None:
    """Splitting batches over 2 or 3 threads changes no event, level change or state array."""
    one, events_one = run_fleet(1)
    assert len(one.level_log or []) > 50  # the fleet exercises the rules
    for threads in (2, 3):
        many, events_many = run_fleet(threads)
        assert events_many == events_one
        assert many.level_log == one.level_log
        for a, b in zip(one.detectors, many.detectors, strict=True):
            for (k, va), vb in zip(a.state().items(), b.state().values(), strict=True):
                np.testing.assert_array_equal(va, vb, err_msg=f"{a.name}/{k}")
