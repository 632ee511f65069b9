"""Offline replay: telemetry CSV + workers/permits JSON → alarm (and action) JSON lines.

The same `DetectorPipeline.process` the live ingest calls does the work; only the clock
(the data's own timestamps) and the I/O (files) differ. Deterministic: the same input gives
byte-identical output.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import orjson

from detectors.config import DetectorSettings
from detectors.errors import ReplayInputError
from detectors.models import CSV_HEADER, AlarmEvent, Geofence, WorkerProfile
from detectors.pipeline import DetectorPipeline
from ingest.wire import KNOWN_FLAGS, RECORD_DTYPE, SampleBatch


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A whole recording as columns, sorted by time (stable: a device keeps its order)."""

    devices: tuple[str, ...]
    rec: np.ndarray  # RECORD_DTYPE, ``dev`` indexes ``devices``

    def __len__(self) -> int:
        return int(self.rec.shape[0])


class ActionSource(Protocol):
    """The seam for the rule engine: alarm events in, actions (replay JSON dicts) out."""

    def on_alarms(self, events: list[AlarmEvent], now_ms: int) -> list[dict[str, Any]]: ...


class NoActions:
    """Until the rule engine exists: no actions."""

    def on_alarms(self, events: list[AlarmEvent], now_ms: int) -> list[dict[str, Any]]:
        return []


def read_telemetry(path: Path) -> Telemetry:
    """Parse the replay CSV (header `CSV_HEADER`; empty cell = missing).

    Raises:
        ReplayInputError: with the line number, for a bad header, cell or flag value.
    """
    index: dict[str, int] = {}
    rows: list[tuple[Any, ...]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CSV_HEADER:
            raise ReplayInputError(str(path), 1, f"header must be {','.join(CSV_HEADER)}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            rows.append(_csv_row(path, line, row, index))
    rec = np.array(rows, dtype=RECORD_DTYPE) if rows else np.empty(0, RECORD_DTYPE)
    rec = rec[np.argsort(rec["ts_ms"], kind="stable")]
    return Telemetry(tuple(index), rec)


def _csv_row(path: Path, line: int, row: list[str], index: dict[str, int]) -> tuple[Any, ...]:
    if len(row) != len(CSV_HEADER):
        raise ReplayInputError(str(path), line, f"{len(row)} cells, expected {len(CSV_HEADER)}")
    device = row[0].strip()
    if not device:
        raise ReplayInputError(str(path), line, "empty device_id")
    try:
        ts = int(row[1])
        values = [float(c) if c.strip() else math.nan for c in row[2:10]]
        flags = int(row[10]) if row[10].strip() else 0
    except ValueError as exc:
        raise ReplayInputError(str(path), line, str(exc)) from None
    if flags & ~KNOWN_FLAGS or flags < 0:
        raise ReplayInputError(str(path), line, f"unknown flag bits in {flags}")
    dev = index.setdefault(device, len(index))
    seq = 0
    return (dev, flags, seq, ts, *values)


def read_workers(path: Path) -> dict[str, WorkerProfile]:
    """``[{"device_id","worker_id","age","acclimatized","resting_hr"}]`` → device → profile."""
    out: dict[str, WorkerProfile] = {}
    for i, w in enumerate(_json_list(path)):
        try:
            age = w.get("age")
            rest = w.get("resting_hr")
            out[str(w["device_id"])] = WorkerProfile(
                worker_id=str(w["worker_id"]),
                age=None if age is None else int(age),
                acclimatized=bool(w.get("acclimatized", False)),
                resting_hr=None if rest is None else float(rest),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReplayInputError(str(path), i, f"bad worker entry: {exc!r}") from None
    return out


def read_permits(path: Path) -> list[Geofence]:
    """``[{"permit_id","type","level","devices","watcher_device","lat","lon","radius_m"}]``."""
    out: list[Geofence] = []
    for i, p in enumerate(_json_list(path)):
        try:
            out.append(
                Geofence(
                    permit_id=str(p["permit_id"]),
                    lat=float(p["lat"]),
                    lon=float(p["lon"]),
                    radius_m=float(p["radius_m"]),
                    devices=tuple(str(d) for d in p.get("devices", [])),
                    watcher_device=None
                    if p.get("watcher_device") is None
                    else str(p["watcher_device"]),
                    type=str(p.get("type", "")),
                    level=str(p.get("level", "")),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReplayInputError(str(path), i, f"bad permit entry: {exc!r}") from None
    return out


def _json_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ReplayInputError(str(path), 0, f"invalid JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise ReplayInputError(str(path), 0, "expected a JSON list of objects")
    return data


def batches(tel: Telemetry, batch_ms: int) -> Iterator[tuple[SampleBatch, int]]:
    """(batch, clock) per ``batch_ms`` window of data time; the clock is the newest ts."""
    rec = tel.rec
    if not len(rec):
        return
    window = rec["ts_ms"] // batch_ms
    cuts = np.flatnonzero(np.diff(window)) + 1
    table = np.array(tel.devices, dtype=object)
    for part in np.split(rec, cuts):
        codes, dev = np.unique(part["dev"], return_inverse=True)
        part = part.copy()
        part["dev"] = dev
        yield SampleBatch.from_records(tuple(table[codes]), part), int(part["ts_ms"].max())


def replay(
    tel: Telemetry,
    *,
    workers: dict[str, WorkerProfile],
    permits: list[Geofence],
    settings: DetectorSettings,
    batch_ms: int = 1000,
    actions: ActionSource | None = None,
    pipeline: DetectorPipeline | None = None,
) -> Iterator[dict[str, Any]]:
    """Feed the recording through a pipeline; yield alarm and action records in order."""
    p = pipeline or DetectorPipeline(settings)
    engine = actions or NoActions()
    for device, profile in sorted(workers.items()):
        p.assign(device, profile)
    p.set_permits(permits)
    for batch, now in batches(tel, batch_ms):
        events = p.process(batch, now)
        yield from (e.to_json() for e in events)
        yield from engine.on_alarms(events, now)


def write_jsonl(records: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    """Write one JSON object per line; returns how many."""
    n = 0
    for r in records:
        out.write(orjson.dumps(r) + b"\n")
        n += 1
    return n
