"""One contract for every detector: determinism, state round-trip, NaN never crashes,
warm-up respected, and the uniform interface."""

from __future__ import annotations

import numpy as np
import pytest

from detectors._buffers import EventBuffer, MinuteBuffer
from detectors.base import Detector, batch_context
from detectors.config import DetectorSettings
from detectors.models import AlarmKind
from detectors.pipeline import DETECTOR_TYPES
from tests.detectors.conftest import to_batch
from tests.detectors.naive import Series
from tests.detectors.strategies import seeded

S = DetectorSettings(drift_warmup_minutes=5, minute_min_samples=2)
FEEDERS = ("quality", "aggregate", "core_temp")


class Stack:
    """The detectors a detector depends on (quality, aggregation, core temperature), then it."""

    def __init__(self, cls: type[Detector], n_slots: int = 2) -> None:
        self.feed = [t(S) for t in DETECTOR_TYPES if t.name in FEEDERS and t is not cls]
        self.det = cls(S)
        for d in (*self.feed, self.det):
            d.grow(n_slots)
            for s in range(n_slots):
                d.configure(s, None)
        if self.det.name == "presence":
            self.det.set_role(0, 1, (30.7395, 121.3442, 20.0))  # type: ignore[attr-defined]

    def process(self, x: Series, slot: int = 0) -> list[tuple[int, int, int, int]]:
        b = to_batch(x)
        ctx = batch_context(
            slot=np.full(len(b), slot, np.int32),
            batch=b,
            events=EventBuffer(2),
            minutes=MinuteBuffer(2),
            now_ms=int(b.ts_ms.max()) if len(b) else 0,
        )
        order = {d.name: d for d in (*self.feed, self.det)}
        for name in ("quality", "aggregate", "core_temp", self.det.name):
            if name in order and (name == self.det.name or name in FEEDERS):
                order[name].update(ctx)
        if self.det.name == "presence":
            self.det.tick(ctx)  # type: ignore[attr-defined]
        slot_, kind, level, ts, _ = ctx.events.rows()
        return [
            (int(a), int(b_), int(c), int(d))
            for a, b_, c, d in zip(slot_, kind, level, ts, strict=True)
        ]


def _slice(x: Series, sl: slice) -> Series:
    return Series(**{k: getattr(x, k)[sl] for k in x.__dataclass_fields__})


PARAMS = pytest.mark.parametrize("cls", DETECTOR_TYPES, ids=lambda c: c.name)


@PARAMS
def test_detector_same_input_same_state_and_events(cls: type[Detector]) -> None:
    """Two fresh detectors fed the same batches end in identical state with identical events."""
    x = seeded(7)
    a, b = Stack(cls), Stack(cls)
    assert a.process(x) == b.process(x)
    for (k, va), vb in zip(a.det.state().items(), b.det.state().values(), strict=True):
        np.testing.assert_array_equal(va, vb, err_msg=k)


@PARAMS
def test_detector_state_round_trip_resumes_identically(cls: type[Detector]) -> None:
    """Saving state mid-stream and loading it elsewhere continues exactly as uninterrupted."""
    x = seeded(8)
    half = len(x.ts) // 2
    whole = Stack(cls)
    ev_whole = whole.process(_slice(x, slice(None, half))) + whole.process(
        _slice(x, slice(half, None))
    )
    first = Stack(cls)
    ev_first = first.process(_slice(x, slice(None, half)))
    second = Stack(cls)
    for src, dst in zip((*first.feed, first.det), (*second.feed, second.det), strict=True):
        dst.load_state({k: v.copy() for k, v in src.state().items()})
    ev_second = second.process(_slice(x, slice(half, None)))
    assert ev_first + ev_second == ev_whole
    for (k, va), vb in zip(whole.det.state().items(), second.det.state().values(), strict=True):
        np.testing.assert_array_equal(va, vb, err_msg=k)


@PARAMS
def test_detector_all_nan_batch_no_crash_no_alarm(cls: type[Detector]) -> None:
    """Samples with every value missing neither crash nor alarm (nothing to judge)."""
    ts = 1_717_200_000_000 + np.arange(0, 300_000, 1000)
    st = Stack(cls)
    events = st.process(Series.make(ts))
    assert events == []


@PARAMS
def test_detector_single_extreme_sample_respects_warm_up(cls: type[Detector]) -> None:
    """One sample of extreme values (no flags) is never enough to alarm."""
    x = Series.make(
        [1_717_200_000_000], hr=[219.0], spo2=[51.0], skin=[41.9], motion=[0.0],
        lat=[30.75], lon=[121.35], gps_acc=[1.0],
    )  # fmt: skip
    assert Stack(cls).process(x) == []


@PARAMS
def test_detector_uniform_interface(cls: type[Detector]) -> None:
    """Every detector names itself, its kinds, scores sized per slot, and grows keeping state."""
    d = cls(S)
    d.grow(3)
    assert isinstance(d.name, str)
    assert d.name
    assert all(isinstance(k, AlarmKind) for k in d.kinds)
    for name, arr in d.scores().items():
        assert arr.shape[0] == 3, name
    before = {k: v.copy() for k, v in d.state().items()}
    d.grow(10)
    for k, v in d.state().items():
        assert v.shape[0] == 10
        np.testing.assert_array_equal(v[:3], before[k], err_msg=k)


def test_detectors_cover_every_alarm_kind() -> None:
    """Together the detectors raise every kind of the replay format."""
    kinds = {k for t in DETECTOR_TYPES for k in t(S).kinds}
    assert kinds == set(AlarmKind)
