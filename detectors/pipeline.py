"""The detector pipeline: one entry point, `DetectorPipeline.process(batch, now_ms)`, used
by the live ingest and by the offline replay alike (only the clock and I/O differ)."""

from __future__ import annotations

import io
import logging
import threading
import time
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from detectors._buffers import EventBuffer, MinuteBuffer
from detectors.aggregate import MinuteAggregator
from detectors.alarms import AlarmBook
from detectors.base import BatchContext, Detector, batch_context
from detectors.config import DetectorSettings
from detectors.core_temp import CoreTempDetector
from detectors.drift import DriftDetector
from detectors.errors import SnapshotError
from detectors.fused import FUSED, advance_samples, group_by_slot
from detectors.heart_rate import SustainedHeartRateDetector
from detectors.man_down import ManDownDetector
from detectors.models import KINDS, AlarmEvent, AlarmKind, Geofence, WorkerProfile
from detectors.presence import ROLE_NONE, ROLE_WATCHER, ROLE_WORKER, PresenceDetector
from detectors.quality import QualityDetector
from detectors.recovery import RecoveryDetector
from detectors.skin_temp import SkinTempDetector
from detectors.spo2 import SpO2Detector
from detectors.strain import StrainDetector
from ingest.wire import SampleBatch

log = logging.getLogger(__name__)

#: 2: the SpO2 window keeps a running sum (``spo2/a.w_n``, ``spo2/a.w_sum``).
SNAPSHOT_VERSION: Final = 2

#: A batch split for threads has this many parts per thread, taken by whichever thread is
#: free: on a shared machine a paused thread then delays one small part, not half the batch.
PARTS_PER_THREAD: Final = 4

#: Run order: quality gates everything; the aggregator feeds the minute-level detectors;
#: the core-temperature estimate feeds the strain index.
DETECTOR_TYPES: Final[tuple[type[Detector], ...]] = (
    QualityDetector,
    MinuteAggregator,
    SpO2Detector,
    SkinTempDetector,
    ManDownDetector,
    RecoveryDetector,
    PresenceDetector,
    CoreTempDetector,
    StrainDetector,
    SustainedHeartRateDetector,
    DriftDetector,
)


class DetectorPipeline:
    """Every detector over every device, with the alarm lifecycle on top.

    Devices get a dense slot the first time they are seen (state arrays grow by doubling).
    Who wears a device comes from the caller (`assign`); which devices are on which permit,
    with the permit's geofence, also (`set_permits`).
    """

    def __init__(self, settings: DetectorSettings, *, site: str | None = None) -> None:
        self.settings = settings.for_site(site)
        self.detectors: list[Detector] = [t(self.settings) for t in DETECTOR_TYPES]
        self.presence = next(d for d in self.detectors if isinstance(d, PresenceDetector))
        #: The sample-level detectors run fused (`detectors.fused`), then the minute-level.
        self._fused = {d.name: d for d in self.detectors if d.name in FUSED}
        self._minute_level = [d for d in self.detectors if d.name not in FUSED]
        self.devices: list[str] = []
        self._slot: dict[str, int] = {}
        self.capacity = 0
        self.profiles: dict[str, WorkerProfile] = {}
        self.fences: list[Geofence] = []
        #: Each device's role on the permits and its permit's circle (from ``fences``).
        self._roles: dict[str, tuple[int, tuple[float, float, float]]] = {}
        self.book = AlarmBook()
        #: Output buffers per part of a batch (one part unless split for threads).
        self._events = [EventBuffer()]
        self._minutes = [MinuteBuffer()]
        self.samples_seen = 0
        #: When a list, every level change (device, kind, level, ts, value) is appended to it
        #: before the lifecycle sees it (tests and debugging).
        self.level_log: list[tuple[str, AlarmKind, int, int, float]] | None = None

    # ------------------------------------------------------------------ devices and context

    def slot(self, device_id: str) -> int:
        """The device's slot, created (with its worker's limits) on first sight."""
        s = self._slot.get(device_id)
        if s is not None:
            return s
        s = len(self.devices)
        if s >= self.capacity:
            self._grow(max(64, 2 * self.capacity))
        self.devices.append(device_id)
        self._slot[device_id] = s
        self._configure(device_id)
        return s

    def _grow(self, capacity: int) -> None:
        for d in self.detectors:
            d.grow(capacity)
        self.capacity = capacity

    def _configure(self, device_id: str) -> None:
        s = self._slot[device_id]
        profile = self.profiles.get(device_id)
        for d in self.detectors:
            d.configure(s, profile)
        role, fence = self._roles.get(device_id, (ROLE_NONE, None))
        self.presence.set_role(s, role, fence)

    def assign(self, device_id: str, profile: WorkerProfile | None) -> None:
        """Who wears ``device_id`` (None: nobody known); applies the worker's limits."""
        if profile is None:
            self.profiles.pop(device_id, None)
        else:
            self.profiles[device_id] = profile
        if device_id in self._slot:
            self._configure(device_id)

    def set_permits(self, fences: Iterable[Geofence]) -> None:
        """The active permits' geofences, watchers and devices (replaces the previous set).

        Incremental: only devices whose role or circle changed are touched, so a permit change
        costs the permits' devices, not the whole fleet.
        """
        before = self._roles
        self._set_fences(fences)
        for device_id in before.keys() | self._roles.keys():
            now = self._roles.get(device_id)
            if now != before.get(device_id) and (s := self._slot.get(device_id)) is not None:
                role, fence = now or (ROLE_NONE, None)
                self.presence.set_role(s, role, fence)
        for f in self.fences:
            for device_id in (*f.devices, *([f.watcher_device] if f.watcher_device else [])):
                self.slot(device_id)  # a device on a permit is watched even before it speaks

    def _set_fences(self, fences: Iterable[Geofence]) -> None:
        """Store the fences and each device's role: a watcher of any permit is a watcher (of
        the first such permit), otherwise a worker of the first permit naming it."""
        self.fences = list(fences)
        roles: dict[str, tuple[int, tuple[float, float, float]]] = {}
        for f in self.fences:
            circle = (f.lat, f.lon, f.radius_m)
            for device_id in f.devices:
                roles.setdefault(device_id, (ROLE_WORKER, circle))
        for f in reversed(self.fences):  # the first permit a device watches wins
            if f.watcher_device:
                roles[f.watcher_device] = (ROLE_WATCHER, (f.lat, f.lon, f.radius_m))
        self._roles = roles

    def worker_of(self, device_id: str) -> str | None:
        p = self.profiles.get(device_id)
        return p.worker_id if p is not None else None

    # ------------------------------------------------------------------ the entry point

    def process(self, batch: SampleBatch, now_ms: int) -> list[AlarmEvent]:
        """Advance every detector over ``batch`` and the clock to ``now_ms``.

        Samples of one device must come in time order across calls; older or duplicate
        ones are skipped. Returns the alarm events, in time order.
        """
        slot, parts = self._group(batch)
        quality = np.zeros(len(batch), dtype=np.uint8)
        while len(self._events) < len(parts):  # output buffers per part, kept across calls
            self._events.append(EventBuffer())
            self._minutes.append(MinuteBuffer())
        contexts = [
            batch_context(
                slot=slot, batch=batch, events=self._events[p], minutes=self._minutes[p],
                now_ms=int(now_ms), idx=idx, quality=quality,
            )
            for p, idx in enumerate(parts)
        ]  # fmt: skip
        for ctx in contexts:
            ctx.events.clear()
            ctx.minutes.clear()
        if len(contexts) == 1:
            self._advance(contexts[0])
        else:
            self._advance_parallel(contexts)
        self.presence.tick(contexts[0])
        self.samples_seen += len(batch)
        return self._lifecycle([ctx.events for ctx in contexts])

    def _advance_parallel(self, contexts: list[BatchContext]) -> None:
        """The parts on ``threads`` threads (this one included; the kernels release the GIL).

        Threads take the next part until none is left, so a thread the OS pauses on a busy
        machine holds up only its current part, not a fixed half of the batch. Which thread
        runs a part does not matter: each part has its own output buffers.
        """
        todo = iter(contexts)
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    ctx = next(todo, None)
                if ctx is None:
                    return
                self._advance(ctx)

        with ThreadPoolExecutor(self.settings.threads - 1, "detectors") as pool:
            futures = [pool.submit(work) for _ in range(self.settings.threads - 1)]
            work()
            for f in futures:
                f.result()

    def _advance(self, ctx: BatchContext) -> None:
        """Every detector over the samples of one context: the sample-level ones in one
        pass per device, then the minute-level ones over the minutes that pass closed."""
        advance_samples(ctx, self._fused)
        for d in self._minute_level:
            d.update(ctx)

    def _group(
        self, batch: SampleBatch
    ) -> tuple[npt.NDArray[np.int32], list[npt.NDArray[np.int64]]]:
        """The slot of every sample (devices seen for the first time get one, in order) and
        the samples grouped by slot, each slot's in batch order (so the fused pass loads a
        device's state once per batch): one part, or `PARTS_PER_THREAD` per thread over
        ranges of slots holding about equal numbers of samples."""
        devices = batch.devices
        if len(devices) > 1:
            try:
                found = itemgetter(*devices)(self._slot)  # known devices: one C call
            except KeyError:
                found = [self.slot(d) for d in devices]
        else:
            found = [self.slot(d) for d in devices]
        n = len(batch)
        parts = 1
        if self.settings.threads > 1 and n >= self.settings.thread_min_samples:
            parts = self.settings.threads * PARTS_PER_THREAD
        slot = np.empty(n, dtype=np.int32)
        idx = np.empty(n, dtype=np.int64)
        starts = np.zeros(parts + 1, dtype=np.int64)
        if n:
            remap = np.array(found, dtype=np.int32)
            counts = np.zeros(self.capacity + 1, dtype=np.int64)
            group_by_slot(batch.dev, remap, parts, counts, slot, idx, starts)
        return slot, [idx[starts[p] : starts[p + 1]] for p in range(parts)]

    def tick(self, now_ms: int) -> list[AlarmEvent]:
        """Advance the clock only (device-offline checks between batches)."""
        return self.process(SampleBatch.empty(), now_ms)

    def _lifecycle(self, buffers: list[EventBuffer]) -> list[AlarmEvent]:
        rows = [b.rows() for b in buffers if int(b.n[0])]
        if not rows:
            return []
        slot, kind, level, ts, value = (
            np.concatenate(cols) if len(rows) > 1 else cols[0] for cols in zip(*rows, strict=True)
        )
        # Time order; ties (same time) by kind, then slot. A slot is in one part only and
        # its events keep their emission order (stable sort), so the order does not depend
        # on how the batch was split.
        order = np.lexsort((slot, kind, ts))
        out: list[AlarmEvent] = []
        for i in order.tolist():
            device = self.devices[int(slot[i])]
            v = float(value[i])
            if self.level_log is not None:
                self.level_log.append((device, KINDS[int(kind[i])], int(level[i]), int(ts[i]), v))
            event = self.book.apply(
                ts_ms=int(ts[i]),
                device_id=device,
                worker_id=self.worker_of(device),
                kind=KINDS[int(kind[i])],
                level=int(level[i]),
                value=None if v != v else v,
            )
            if event is not None:
                out.append(event)
        return out

    # ------------------------------------------------------------------ reading

    def scores(self, device_id: str) -> dict[str, Any]:
        """Every detector's current scores for one device (for the API and debugging)."""
        s = self._slot[device_id]
        out: dict[str, Any] = {}
        for d in self.detectors:
            for name, arr in d.scores().items():
                v = arr[s]
                out[f"{d.name}.{name}"] = v.tolist() if isinstance(v, np.ndarray) else v.item()
        return out

    def levels(self, device_id: str) -> dict[AlarmKind, int]:
        s = self._slot[device_id]
        return {k: int(a[s]) for d in self.detectors for k, a in d.levels().items()}

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> bytes:
        """All detector state, slots, profiles, permits and open alarms as bytes."""
        meta = {
            "version": SNAPSHOT_VERSION,
            "capacity": self.capacity,
            "devices": self.devices,
            "samples_seen": self.samples_seen,
            "profiles": {
                d: [p.worker_id, p.age, p.acclimatized, p.resting_hr]
                for d, p in self.profiles.items()
            },
            "fences": [
                [f.permit_id, f.lat, f.lon, f.radius_m, list(f.devices), f.watcher_device]
                for f in self.fences
            ],
            "alarms": self.book.to_json(),
        }
        arrays: dict[str, Any] = {"meta": np.frombuffer(orjson.dumps(meta), dtype=np.uint8)}
        for d in self.detectors:
            for k, v in d.state().items():
                arrays[f"{d.name}/{k}"] = v[: len(self.devices)]
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, **arrays)
        return buf.getvalue()

    def restore(self, data: bytes) -> None:
        """Replace this pipeline's state with a `snapshot` (same settings expected).

        Raises:
            SnapshotError: when the bytes are not a snapshot this version can read.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            meta = orjson.loads(arrays.pop("meta").tobytes())
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise SnapshotError(f"not a snapshot ({exc!r})") from exc
        if meta.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError(f"version {meta.get('version')!r}, expected {SNAPSHOT_VERSION}")
        try:
            fresh = self._rebuilt(meta, arrays)
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"malformed snapshot ({exc!r})") from exc
        self.__dict__.update(fresh.__dict__)

    def _rebuilt(self, meta: dict[str, Any], arrays: dict[str, Any]) -> DetectorPipeline:
        devices = [str(d) for d in meta["devices"]]
        fresh = DetectorPipeline.__new__(DetectorPipeline)
        fresh.__init__(self.settings)  # type: ignore[misc]
        fresh.profiles = {
            d: WorkerProfile(w, a, bool(acc), r) for d, (w, a, acc, r) in meta["profiles"].items()
        }
        fresh._set_fences(
            Geofence(p, lat, lon, r, tuple(devs), watcher)
            for p, lat, lon, r, devs, watcher in meta["fences"]
        )
        for device in devices:
            fresh.slot(device)
        n = len(devices)
        for d in fresh.detectors:
            state = d.state()
            for k, arr in state.items():
                saved = arrays.get(f"{d.name}/{k}")
                if saved is None or saved.shape[1:] != arr.shape[1:] or saved.shape[0] != n:
                    raise SnapshotError(f"array {d.name}/{k} missing or of the wrong shape")
                arr[:n] = saved
        fresh.book = AlarmBook.from_json(meta["alarms"])
        fresh.samples_seen = int(meta.get("samples_seen", 0))
        return fresh

    # ------------------------------------------------------------------ start-up

    @staticmethod
    def warm_up(settings: DetectorSettings | None = None) -> float:
        """Compile (or load from the on-disk cache) every kernel; returns the seconds taken.

        Call before serving so the first real batch does not pay the compile cost.
        """
        t0 = time.perf_counter()
        base = settings or DetectorSettings()
        # split even this tiny batch, so the split kernel and the threaded path load too
        p = DetectorPipeline(base.model_copy(update={"threads": 2, "thread_min_samples": 1}))
        p.set_permits([Geofence("warm-up", 30.0, 121.0, 100.0, ("w-1",), "w-2")])
        from ingest.wire import Sample

        samples = [
            Sample(dev, i, 60_000 * m + 1000 * i, 80.0, 33.0, 97.0, 30.0, 121.0, 5.0, 0.2, 90.0, f)
            for m in range(2)
            for i in range(3)
            for dev, f in (("w-1", 0), ("w-2", 3))
        ]
        p.process(SampleBatch.from_samples(samples), 120_000)
        p.tick(400_000)
        return time.perf_counter() - t0


__all__ = ["DETECTOR_TYPES", "DetectorPipeline"]
