"""The uniform detector interface: per-slot state arrays, rules, update a batch, scores,
save/restore state. Kernels live in each detector's module; this is the Python side."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

from detectors._buffers import EventBuffer, MinuteBuffer
from detectors.config import DetectorSettings
from detectors.models import AlarmKind, WorkerProfile
from detectors.policy import Rule, RuleTable

#: Per-sample quality bits written by the signal-quality detector.
Q_HR: Final = 1
Q_SPO2: Final = 2
Q_SKIN: Final = 4
Q_GPS: Final = 8
Q_MOTION: Final = 16
#: The sample is newer than the device's last one (late or duplicate samples are skipped).
Q_FRESH: Final = 32

FLAG_SOS: Final = 1
FLAG_FALL: Final = 2

Array = npt.NDArray[Any]


@dataclass(slots=True)
class BatchContext:
    """One batch as the kernels see it: columns, slot per sample, and the shared outputs.

    ``idx`` lists the samples this context covers, in batch order: all of them, or those
    of one range of slots when the pipeline splits a batch into parts for threads. Each
    slot sees its own samples in batch order and slots are independent, so the results do
    not depend on how slots are split or interleaved (the lifecycle sorts the events); batch
    order keeps the columns streaming from memory instead of being gathered.
    """

    idx: npt.NDArray[np.int64]
    slot: npt.NDArray[np.int32]
    ts: npt.NDArray[np.int64]
    hr: npt.NDArray[np.float32]
    skin: npt.NDArray[np.float32]
    spo2: npt.NDArray[np.float32]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    gps_acc: npt.NDArray[np.float32]
    motion: npt.NDArray[np.float32]
    flags: npt.NDArray[np.uint16]
    quality: npt.NDArray[np.uint8]
    events: EventBuffer
    minutes: MinuteBuffer
    now_ms: int

    @property
    def n(self) -> int:
        """Samples this context covers."""
        return int(self.idx.shape[0])


def batch_context(
    *, slot: npt.NDArray[np.int32], batch: Any, events: EventBuffer,
    minutes: MinuteBuffer, now_ms: int, idx: npt.NDArray[np.int64] | None = None,
    quality: npt.NDArray[np.uint8] | None = None,
) -> BatchContext:  # fmt: skip
    """A context over a `SampleBatch` whose samples map to ``slot``: over the samples ``idx``
    (default all), writing quality bits to ``quality`` (default a new array)."""
    return BatchContext(
        idx=np.arange(len(batch), dtype=np.int64) if idx is None else idx,
        slot=slot,
        ts=batch.ts_ms,
        hr=batch.hr,
        skin=batch.skin_temp,
        spo2=batch.spo2,
        lat=batch.lat,
        lon=batch.lon,
        gps_acc=batch.gps_acc,
        motion=batch.motion,
        flags=batch.flags,
        quality=np.zeros(len(batch), dtype=np.uint8) if quality is None else quality,
        events=events,
        minutes=minutes,
        now_ms=now_ms,
    )


@dataclass(frozen=True, slots=True)
class StateField:
    """One per-slot state array: dtype, initial value, and trailing width (0: 1-D)."""

    dtype: Any
    fill: float | int
    width: int = 0


def drive(n: int, buffer: EventBuffer | MinuteBuffer, call: Callable[[int], int]) -> None:
    """Run a resumable kernel over ``n`` items, growing ``buffer`` whenever it stops early."""
    i = 0
    while True:
        i = int(call(i))
        if i >= n:
            return
        buffer.grow()


class Detector(ABC):
    """A detector: per-slot state (structure of arrays), a rule table, one kernel pass.

    Subclasses declare ``name``, ``fields`` (state arrays), ``scores_`` (the names of the
    fields that are scores), and implement `make_rules`, `limits` and `update`.
    """

    name: ClassVar[str]
    fields: ClassVar[dict[str, StateField]] = {}
    scores_: ClassVar[tuple[str, ...]] = ()
    #: Per-slot parameters derived from a worker profile (not state, but saved with it).
    params: ClassVar[dict[str, StateField]] = {}

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self.rules = RuleTable(self.make_rules(settings))
        on, off = self.limits(None)
        if on:
            self.rules.set_defaults(on, off)
        self.capacity = 0
        self.arrays: dict[str, Array] = {}
        self.grow(0)

    # ----------------------------------------------------------------- declared by detectors

    @abstractmethod
    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        """The detector's policy rules (kinds, severities, holds)."""

    def limits(self, profile: WorkerProfile | None) -> tuple[list[float], list[float]]:
        """(on, off) limit per rule for a worker (``None``: the site default)."""
        return [], []

    def param_values(self, profile: WorkerProfile | None) -> dict[str, float]:
        """Per-slot parameters for a worker (``None``: the site default)."""
        return {}

    @abstractmethod
    def update(self, ctx: BatchContext) -> None:
        """Advance every slot over the batch; append level changes to ``ctx.events``."""

    def fused_args(self) -> tuple[Any, ...]:
        """A sample-level detector's arguments to `detectors.fused.fused_kernel`:
        (parameters, state arrays, score scratch…, rule arrays), fresh scratch per call."""
        raise NotImplementedError(f"{self.name} is not a sample-level detector")

    # ----------------------------------------------------------------- uniform interface

    @property
    def kinds(self) -> tuple[AlarmKind, ...]:
        return self.rules.kinds

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` slots (state of existing slots kept)."""
        old = self.capacity
        defaults = self.param_values(None)
        for name, f in {**self.fields, **self.params}.items():
            shape = (capacity, f.width) if f.width else (capacity,)
            fill = defaults.get(name, f.fill)
            arr = np.full(shape, fill, dtype=f.dtype)
            if old:
                arr[:old] = self.arrays[name][:old]
            self.arrays[name] = arr
        self.rules.grow(capacity)
        self.capacity = capacity

    def configure(self, slot: int, profile: WorkerProfile | None) -> None:
        """Apply a worker's profile (limits and parameters) to one slot."""
        on, off = self.limits(profile)
        if on:
            self.rules.set_limits(slot, on, off)
        for name, value in self.param_values(profile).items():
            self.arrays[name][slot] = value

    def reset_slot(self, slot: int) -> None:
        """Forget everything learned for one slot (a device handed to another worker)."""
        defaults = self.param_values(None)
        for name, f in self.fields.items():
            self.arrays[name][slot] = defaults.get(name, f.fill)
        r = self.rules
        r.since[slot] = -1  # type: ignore[attr-defined]
        r.active[slot] = 0  # type: ignore[attr-defined]
        r.csince[slot] = -1  # type: ignore[attr-defined]
        r.lvl[slot] = 0  # type: ignore[attr-defined]

    def scores(self) -> dict[str, Array]:
        """Current score per slot, by score name (views; do not modify)."""
        return {name: self.arrays[name] for name in self.scores_}

    def levels(self) -> dict[AlarmKind, npt.NDArray[np.int8]]:
        """Current alarm level (`Severity` value) per kind and slot."""
        return self.rules.levels()

    def state(self) -> dict[str, Array]:
        """Everything needed to resume: state arrays, parameters, rule state and limits."""
        out = {f"a.{k}": v for k, v in self.arrays.items()}
        out.update({f"r.{k}": v for k, v in self.rules.state().items()})
        return out

    def load_state(self, state: dict[str, Array]) -> None:
        """Restore what `state` returned (the capacity must already match)."""
        for name in self.arrays:
            self.arrays[name][...] = state[f"a.{name}"]
        self.rules.load({k[2:]: v for k, v in state.items() if k.startswith("r.")})

    # ----------------------------------------------------------------- helpers

    def a(self, *names: str) -> tuple[Array, ...]:
        return tuple(self.arrays[n] for n in names)

    @staticmethod
    def ev(ctx: BatchContext) -> tuple[Array, ...]:
        e = ctx.events
        return (e.slot, e.kind, e.level, e.ts, e.value, e.n)


def f32(limit: float) -> float:
    """A limit compared with float32 wire values, rounded to float32 first: a value sent
    exactly at the limit is then at it (0.01 as float32 is below 0.01 as float64)."""
    return float(np.float32(limit))


def ms(seconds: float) -> int:
    """Seconds → integer milliseconds (rounded)."""
    return round(seconds * 1000)
