"""Offline replay: telemetry CSV + workers/permits JSON → alarm and action JSON lines.

The same `DetectorPipeline.process` the live ingest calls does the work; only the clock
(the data's own timestamps) and the I/O (files) differ. Actions come from an `ActionSource`
the caller plugs in (the CLI composes the permits' rule engine; this package does not import
it). Deterministic: the same input gives byte-identical output.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn, Protocol

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
    """The seam for the rule engine: each alarm change in, the actions it causes out (replay
    JSON dicts); after each batch, whatever the engine does between batches."""

    def on_alarm(self, event: AlarmEvent) -> list[dict[str, Any]]: ...

    def after_batch(self, pipeline: DetectorPipeline, now_ms: int) -> None: ...


class NoActions:
    """Alarms only: no rule engine."""

    def on_alarm(self, event: AlarmEvent) -> list[dict[str, Any]]:
        return []

    def after_batch(self, pipeline: DetectorPipeline, now_ms: int) -> None:
        return None


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
    """``[{"device_id","worker_id","age","acclimatized","resting_hr"}]`` → device → profile.

    Raises:
        ReplayInputError: with the entry's line and the field, for a malformed entry.
    """
    out: dict[str, WorkerProfile] = {}
    for i, (line, w) in enumerate(_json_list(path)):
        f = _Fields(path, line, f"workers[{i}]", w, _WORKER_KEYS)
        device = f.text("device_id")
        if device in out:
            f.fail("device_id", f"device {device!r} listed twice")
        out[device] = WorkerProfile(
            worker_id=f.text("worker_id"),
            age=f.integer("age"),
            acclimatized=f.flag("acclimatized"),
            resting_hr=f.number("resting_hr", optional=True),
        )
    return out


def read_permits(path: Path, *, permit_type: Callable[[str], str] | None = None) -> list[Geofence]:
    """``[{"permit_id","type","level","devices","watcher_device","lat","lon","radius_m"}]``.

    ``permit_type`` checks and normalises the ``type`` (the caller's vocabulary; it raises
    ``ValueError`` for an unknown one).

    Raises:
        ReplayInputError: with the entry's line and the field, for a malformed entry.
    """
    out: list[Geofence] = []
    seen: set[str] = set()
    for i, (line, p) in enumerate(_json_list(path)):
        f = _Fields(path, line, f"permits[{i}]", p, _PERMIT_KEYS)
        pid = f.text("permit_id")
        if pid in seen:
            f.fail("permit_id", f"permit {pid!r} listed twice")
        seen.add(pid)
        kind = f.text("type")
        if permit_type is not None:
            try:
                kind = permit_type(kind)
            except ValueError as exc:
                f.fail("type", str(exc))
        out.append(
            Geofence(
                permit_id=pid,
                lat=f.number("lat", low=-90, high=90),
                lon=f.number("lon", low=-180, high=180),
                radius_m=f.number("radius_m", low=0, low_open=True),
                devices=f.texts("devices"),
                watcher_device=f.text("watcher_device", optional=True),
                type=kind,
                level=f.level("level"),
            )
        )
    return out


_WORKER_KEYS = frozenset({"device_id", "worker_id", "age", "acclimatized", "resting_hr"})
_PERMIT_KEYS = frozenset(
    {"permit_id", "type", "level", "devices", "watcher_device", "lat", "lon", "radius_m"}
)


class _Fields:
    """Typed reads of one JSON entry; every error names the file, line, entry and field."""

    def __init__(
        self, path: Path, line: int, where: str, entry: dict[str, Any], keys: frozenset[str]
    ) -> None:
        self.path, self.line, self.where, self.entry = path, line, where, entry
        unknown = sorted(set(entry) - keys)
        if unknown:
            self.fail(unknown[0], f"unknown field; known: {', '.join(sorted(keys))}")

    def fail(self, key: str, reason: str) -> NoReturn:
        raise ReplayInputError(str(self.path), self.line, f"{self.where}.{key}: {reason}")

    def _get(self, key: str, optional: bool) -> Any:
        value = self.entry.get(key)
        if value is None and not optional:
            self.fail(key, "missing" if key not in self.entry else "must not be null")
        return value

    def text(self, key: str, *, optional: bool = False) -> Any:
        value = self._get(key, optional)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, f"expected a list of device ids, got {value!r}")
        return tuple(value)

    def number(
        self,
        key: str,
        *,
        optional: bool = False,
        low: float = -math.inf,
        high: float = math.inf,
        low_open: bool = False,
    ) -> Any:
        value = self._get(key, optional)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, f"expected a number, got {value!r}")
        bad_low = value <= low if low_open else value < low
        if bad_low or value > high or not math.isfinite(value):
            self.fail(key, f"{value!r} out of range {'(' if low_open else '['}{low}, {high}]")
        return float(value)

    def integer(self, key: str) -> int | None:
        value = self.entry.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 150:
            self.fail(key, f"expected an age in years (1-149), got {value!r}")
        return value

    def flag(self, key: str) -> bool:
        value = self.entry.get(key, False)
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {value!r}")
        return value

    def level(self, key: str) -> str:
        value = self.entry.get(key)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.fail(key, f"expected a string or an integer, got {value!r}")
        return str(value)


def _json_list(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a JSON list file, each with the line it starts on."""
    raw = path.read_bytes()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ReplayInputError(str(path), exc.lineno, f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise ReplayInputError(str(path), 1, "expected a JSON list of objects")
    lines = _element_lines(raw.decode("utf-8"))
    for i, x in enumerate(data):
        if not isinstance(x, dict):
            raise ReplayInputError(str(path), lines[i], f"entry {i}: expected an object")
    return list(zip(lines, data, strict=True))


_WS = re.compile(r"[ \t\n\r]*")


def _element_lines(text: str) -> list[int]:
    """The 1-based line on which each element of the top-level JSON list starts."""
    decoder = json.JSONDecoder()
    i = _WS.match(text, text.index("[") + 1).end()  # type: ignore[union-attr]
    lines: list[int] = []
    line, counted = 1, 0
    while i < len(text) and text[i] != "]":
        line += text.count("\n", counted, i)
        counted = i
        lines.append(line)
        _, i = decoder.raw_decode(text, i)
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if i < len(text) and text[i] == ",":
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
    return lines


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
    """Feed the recording through a pipeline; yield alarm and action records in time order
    (each alarm change followed by the actions it caused)."""
    p = pipeline or DetectorPipeline(settings)
    engine = actions or NoActions()
    for device, profile in sorted(workers.items()):
        p.assign(device, profile)
    p.set_permits(permits)
    for batch, now in batches(tel, batch_ms):
        for event in p.process(batch, now):
            yield event.to_json()
            yield from engine.on_alarm(event)
        engine.after_batch(p, now)


def write_jsonl(records: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    """Write one JSON object per line; returns how many."""
    n = 0
    for r in records:
        out.write(orjson.dumps(r) + b"\n")
        n += 1
    return n
