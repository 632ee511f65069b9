"""Wire format v1: JSON and little-endian binary telemetry frames, decoded into columnar batches.

The byte layouts, field meanings and examples are in ``docs/wire-format.md``; this module is
their only implementation, shared by the ingest and the simulator.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from ingest.errors import DecodeError

VERSION: Final = 1
MAGIC: Final = b"PP"
KIND_DEVICE: Final = 1
KIND_GATEWAY: Final = 2

FLAG_SOS: Final = 1 << 0
FLAG_FALL: Final = 1 << 1
FLAG_REPLAY: Final = 1 << 2
KNOWN_FLAGS: Final = FLAG_SOS | FLAG_FALL | FLAG_REPLAY

MAX_SAMPLES_PER_FRAME: Final = 65_535
#: Use ``fullmatch``: ``match`` lets a trailing newline through ``$``, which the database's
#: CHECK (same pattern) refuses — a frame the ingest could then never store.
DEVICE_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RESERVED_DEVICE_IDS: Final = frozenset({"gateway"})

#: Binary header: magic, version, kind, device count, sample count.
HEADER: Final = struct.Struct("<2sBBHH")

#: One binary sample record, 56 bytes, little-endian, no padding. NaN = missing.
RECORD_DTYPE: Final = np.dtype(
    [
        ("dev", "<u2"),
        ("flags", "<u2"),
        ("seq", "<u4"),
        ("ts_ms", "<i8"),
        ("hr", "<f4"),
        ("skin_temp", "<f4"),
        ("spo2", "<f4"),
        ("lat", "<f8"),
        ("lon", "<f8"),
        ("gps_acc", "<f4"),
        ("motion", "<f4"),
        ("battery", "<f4"),
    ]
)
assert RECORD_DTYPE.itemsize == 56

#: Measurement columns in wire order; each may be missing (NaN in a batch, null in JSON).
MEASUREMENTS: Final = ("hr", "skin_temp", "spo2", "lat", "lon", "gps_acc", "motion", "battery")
_F64: Final = frozenset({"lat", "lon"})
_JSON_SAMPLE_KEYS: Final = frozenset({"seq", "ts_ms", "flags", *MEASUREMENTS})


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample, row-wise: what a device measures at one instant. ``None`` = missing."""

    device_id: str
    seq: int
    ts_ms: int
    hr: float | None = None
    skin_temp: float | None = None
    spo2: float | None = None
    lat: float | None = None
    lon: float | None = None
    gps_acc: float | None = None
    motion: float | None = None
    battery: float | None = None
    flags: int = 0


FloatArray = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True, slots=True, eq=False)
class SampleBatch:
    """Samples as columns (structure of arrays); ``dev`` indexes ``devices``. NaN = missing."""

    devices: tuple[str, ...]
    dev: npt.NDArray[np.uint16]
    seq: npt.NDArray[np.uint32]
    ts_ms: npt.NDArray[np.int64]
    hr: npt.NDArray[np.float32]
    skin_temp: npt.NDArray[np.float32]
    spo2: npt.NDArray[np.float32]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    gps_acc: npt.NDArray[np.float32]
    motion: npt.NDArray[np.float32]
    battery: npt.NDArray[np.float32]
    flags: npt.NDArray[np.uint16]

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    @classmethod
    def from_records(cls, devices: Sequence[str], rec: np.ndarray) -> SampleBatch:
        """Columns copied out of a ``RECORD_DTYPE`` array."""
        cols = {name: np.ascontiguousarray(rec[name]) for name in RECORD_DTYPE.names or ()}
        return cls(devices=tuple(devices), **cols)

    @classmethod
    def empty(cls) -> SampleBatch:
        return cls.from_records((), np.empty(0, dtype=RECORD_DTYPE))

    @classmethod
    def from_samples(cls, samples: Sequence[Sample]) -> SampleBatch:
        """A batch of row-wise samples; ``None`` becomes NaN."""
        index: dict[str, int] = {}
        rec = np.empty(len(samples), dtype=RECORD_DTYPE)
        for i, s in enumerate(samples):
            rec[i] = (
                index.setdefault(s.device_id, len(index)),
                s.flags,
                s.seq,
                s.ts_ms,
                *(math.nan if (v := getattr(s, m)) is None else v for m in MEASUREMENTS),
            )
        return cls.from_records(tuple(index), rec)

    def to_records(self) -> np.ndarray:
        """The batch as one ``RECORD_DTYPE`` array (the binary frame's body)."""
        rec = np.empty(len(self), dtype=RECORD_DTYPE)
        for name in RECORD_DTYPE.names or ():
            rec[name] = getattr(self, name)
        return rec

    def device_ids(self) -> npt.NDArray[np.object_]:
        """The device id of every sample."""
        table = np.array(self.devices, dtype=object)
        return table[self.dev] if len(self) else np.empty(0, dtype=object)

    def select(self, mask: npt.NDArray[np.bool_]) -> SampleBatch:
        """The samples where ``mask`` holds (device table kept as is)."""
        return SampleBatch.from_records(self.devices, self.to_records()[mask])

    def by_device(self) -> list[SampleBatch]:
        """One single-device batch per device present, samples kept in their order."""
        rec = self.to_records()
        order = np.argsort(rec["dev"], kind="stable")
        rec = rec[order]
        cuts = np.flatnonzero(np.diff(rec["dev"])) + 1
        out = []
        for part in np.split(rec, cuts) if len(rec) else []:
            device = self.devices[int(part["dev"][0])]
            part["dev"] = 0
            out.append(SampleBatch.from_records((device,), part))
        return out

    def samples(self) -> list[Sample]:
        """Row-wise view, for tests and debugging (not for hot paths)."""
        out = []
        for i in range(len(self)):
            values = {m: _opt(getattr(self, m)[i]) for m in MEASUREMENTS}
            out.append(
                Sample(
                    device_id=self.devices[int(self.dev[i])],
                    seq=int(self.seq[i]),
                    ts_ms=int(self.ts_ms[i]),
                    flags=int(self.flags[i]),
                    **values,
                )
            )
        return out


def concat(batches: Iterable[SampleBatch]) -> SampleBatch:
    """One batch from many; device tables are merged and indexes remapped."""
    parts = [b for b in batches if len(b)]
    if not parts:
        return SampleBatch.empty()
    if len(parts) == 1:
        return parts[0]
    index: dict[str, int] = {}
    recs = []
    for b in parts:
        remap = np.array([index.setdefault(d, len(index)) for d in b.devices], dtype=np.uint16)
        rec = b.to_records()
        rec["dev"] = remap[rec["dev"]]
        recs.append(rec)
    return SampleBatch.from_records(tuple(index), np.concatenate(recs))


def _opt(v: float | np.floating[Any]) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f


# --------------------------------------------------------------------------- encoding


def encode_binary(samples: Sequence[Sample] | SampleBatch, *, gateway: bool = False) -> bytes:
    """A binary v1 frame. A device frame holds samples of one device; ``gateway=True`` many."""
    batch = samples if isinstance(samples, SampleBatch) else SampleBatch.from_samples(samples)
    _check_frame_shape(batch, gateway=gateway)
    parts = [
        HEADER.pack(
            MAGIC,
            VERSION,
            KIND_GATEWAY if gateway else KIND_DEVICE,
            len(batch.devices),
            len(batch),
        )
    ]
    for device in batch.devices:
        raw = device.encode("ascii")
        parts.append(bytes((len(raw),)) + raw)
    parts.append(batch.to_records().tobytes())
    return b"".join(parts)


def encode_json(samples: Sequence[Sample] | SampleBatch, *, gateway: bool = False) -> bytes:
    """A JSON v1 frame (UTF-8). Missing values are written as ``null``."""
    batch = samples if isinstance(samples, SampleBatch) else SampleBatch.from_samples(samples)
    _check_frame_shape(batch, gateway=gateway)
    rows = []
    for s in batch.samples():
        row: dict[str, Any] = {"seq": s.seq, "ts_ms": s.ts_ms}
        if gateway:
            row = {"device_id": s.device_id, **row}
        row.update({m: getattr(s, m) for m in MEASUREMENTS})
        row["flags"] = s.flags
        rows.append(row)
    frame: dict[str, Any] = {"v": VERSION}
    if not gateway:
        frame["device_id"] = batch.devices[0]
    frame["samples"] = rows
    return orjson.dumps(frame)


def _check_frame_shape(batch: SampleBatch, *, gateway: bool) -> None:
    if not 1 <= len(batch) <= MAX_SAMPLES_PER_FRAME:
        raise ValueError(f"a frame holds 1..{MAX_SAMPLES_PER_FRAME} samples, not {len(batch)}")
    if not gateway and len(set(batch.dev.tolist())) != 1:
        raise ValueError("a device frame holds samples of exactly one device")
    for device in batch.devices:
        _check_device_id(device, error=ValueError)


def _check_device_id(device: str, *, error: type[Exception] = DecodeError) -> None:
    if not DEVICE_ID_RE.fullmatch(device) or device in RESERVED_DEVICE_IDS:
        why = f"invalid device id {device!r}: 1-64 of [A-Za-z0-9._-], not 'gateway'"
        raise DecodeError(why, "device") if error is DecodeError else error(why)


# --------------------------------------------------------------------------- decoding


def decode(payload: bytes, *, topic_device: str | None = None) -> SampleBatch:
    """Decode a v1 frame of either encoding into a batch.

    Args:
        payload: the MQTT payload.
        topic_device: the device id named by the topic; a device frame must carry the same one.
            ``None`` for gateway topics.

    Raises:
        DecodeError: with the reason, for anything that is not a well-formed v1 frame.
    """
    if not payload:
        raise DecodeError("empty payload", "empty")
    if payload[:2] == MAGIC:
        batch, gateway = _decode_binary(payload)
    elif payload[:1] in (b"{", b"[", b" ", b"\n", b"\t", b"\r"):
        batch, gateway = _decode_json(payload)
    else:
        raise DecodeError(f"unknown encoding: first byte 0x{payload[0]:02x}", "encoding")
    if topic_device is None and not gateway:
        raise DecodeError("device frame on a gateway topic", "device")
    if topic_device is not None:
        if gateway:
            raise DecodeError("gateway frame on a device topic", "device")
        if batch.devices[0] != topic_device:
            raise DecodeError(
                f"device id {batch.devices[0]!r} does not match the topic's {topic_device!r}",
                "device",
            )
    return batch


@dataclass(frozen=True, slots=True)
class FrameLayout:
    """Where the parts of a structurally valid binary frame are.

    Attributes:
        gateway: a gateway frame (else a device frame).
        devices: the device table.
        table_end: offset of the first sample record (the device table spans 8..table_end).
        n_samples: number of 56-byte records that follow.
    """

    gateway: bool
    devices: tuple[str, ...]
    table_end: int
    n_samples: int


def frame_layout(buf: bytes) -> FrameLayout:
    """Validate a binary frame's header, device table and length (not the records).

    Raises:
        DecodeError: for any structural fault.
    """
    if len(buf) < HEADER.size:
        raise DecodeError(f"truncated header: {len(buf)} of {HEADER.size} bytes")
    _, version, kind, n_dev, n = HEADER.unpack_from(buf)
    if version != VERSION:
        raise DecodeError(f"unsupported version {version} (this is v{VERSION})", "version")
    if kind not in (KIND_DEVICE, KIND_GATEWAY):
        raise DecodeError(f"unknown frame kind {kind}")
    if n == 0:
        raise DecodeError("frame holds no samples")
    if n_dev == 0 or (kind == KIND_DEVICE and n_dev != 1):
        raise DecodeError(f"bad device count {n_dev} for frame kind {kind}")
    devices, offset = _read_device_table(buf, HEADER.size, n_dev)
    expected = offset + n * RECORD_DTYPE.itemsize
    if len(buf) != expected:
        what = "truncated" if len(buf) < expected else "trailing bytes"
        raise DecodeError(f"{what}: {len(buf)} bytes, the header promises {expected}")
    return FrameLayout(kind == KIND_GATEWAY, devices, offset, n)


def record_faults(rec: np.ndarray, n_dev: int | npt.NDArray[np.integer[Any]]) -> np.ndarray:
    """Per record: True where its device index is outside the table or a reserved flag is set.
    ``n_dev`` may be one table size or one per record (many frames checked at once)."""
    reserved = np.uint16(0xFFFF & ~KNOWN_FLAGS)
    return (rec["dev"] >= n_dev) | ((rec["flags"] & reserved) != 0)  # type: ignore[no-any-return]


def _decode_binary(buf: bytes) -> tuple[SampleBatch, bool]:
    layout = frame_layout(buf)
    n_dev = len(layout.devices)
    rec = np.frombuffer(buf, dtype=RECORD_DTYPE, count=layout.n_samples, offset=layout.table_end)
    if int(rec["dev"].max()) >= n_dev:
        raise DecodeError(f"device index {int(rec['dev'].max())} outside a table of {n_dev}")
    if int(np.bitwise_or.reduce(rec["flags"])) & ~KNOWN_FLAGS:
        raise DecodeError("reserved flag bits set", "flags")
    return SampleBatch.from_records(layout.devices, rec), layout.gateway


def _read_device_table(buf: bytes, offset: int, n_dev: int) -> tuple[tuple[str, ...], int]:
    devices: list[str] = []
    for _ in range(n_dev):
        if offset >= len(buf):
            raise DecodeError("truncated device table")
        size = buf[offset]
        raw = buf[offset + 1 : offset + 1 + size]
        if len(raw) != size:
            raise DecodeError("truncated device table")
        try:
            device = raw.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("device id is not ASCII", "device") from None
        _check_device_id(device)
        devices.append(device)
        offset += 1 + size
    if len(set(devices)) != len(devices):
        raise DecodeError("device table names a device twice")
    return tuple(devices), offset


def _decode_json(buf: bytes) -> tuple[SampleBatch, bool]:
    try:
        frame = orjson.loads(buf)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}", "json") from None
    if not isinstance(frame, dict):
        raise DecodeError("JSON frame is not an object")
    if frame.get("v") != VERSION or isinstance(frame.get("v"), bool):
        raise DecodeError(f"unsupported version {frame.get('v')!r} (this is v{VERSION})", "version")
    gateway = "gateway_id" in frame or "device_id" not in frame
    allowed = {"v", "samples", "gateway_id"} if gateway else {"v", "samples", "device_id"}
    if extra := set(frame) - allowed:
        raise DecodeError(f"unknown frame keys {sorted(extra)}")
    rows = frame.get("samples")
    if not isinstance(rows, list) or not rows:
        raise DecodeError("'samples' must be a non-empty list")
    if len(rows) > MAX_SAMPLES_PER_FRAME:
        raise DecodeError(f"more than {MAX_SAMPLES_PER_FRAME} samples")
    if gateway:
        gw = frame.get("gateway_id")
        if gw is not None and not (isinstance(gw, str) and DEVICE_ID_RE.fullmatch(gw)):
            raise DecodeError("invalid gateway_id", "device")
    else:
        device = frame["device_id"]
        if not isinstance(device, str):
            raise DecodeError("'device_id' must be a string", "device")
        _check_device_id(device)
    index: dict[str, int] = {} if gateway else {frame["device_id"]: 0}
    rec = np.empty(len(rows), dtype=RECORD_DTYPE)
    for i, row in enumerate(rows):
        rec[i] = _json_row(row, i, index, gateway=gateway)
    return SampleBatch.from_records(tuple(index), rec), gateway


def _json_row(row: Any, i: int, index: dict[str, int], *, gateway: bool) -> tuple[Any, ...]:
    if not isinstance(row, dict):
        raise DecodeError(f"sample {i} is not an object")
    keys = set(row)
    if gateway:
        device = row.get("device_id")
        if not isinstance(device, str):
            raise DecodeError(f"sample {i}: 'device_id' must be a string", "device")
        _check_device_id(device)
        dev = index.setdefault(device, len(index))
        keys.discard("device_id")
    else:
        dev = 0
    if extra := keys - _JSON_SAMPLE_KEYS:
        raise DecodeError(f"sample {i}: unknown keys {sorted(extra)}")
    seq = _json_int(row, "seq", i, 0, 2**32 - 1)
    ts_ms = _json_int(row, "ts_ms", i, 0, 2**63 - 1)
    flags = _json_int(row, "flags", i, 0, 0xFFFF) if "flags" in row else 0
    if flags & ~KNOWN_FLAGS:
        raise DecodeError(f"sample {i}: reserved flag bits set", "flags")
    values = []
    for m in MEASUREMENTS:
        v = row.get(m)
        if v is None:
            values.append(math.nan)
        elif isinstance(v, bool) or not isinstance(v, int | float):
            raise DecodeError(f"sample {i}: '{m}' must be a number or null", "field")
        else:
            values.append(float(v))
    return (dev, flags, seq, ts_ms, *values)


def _json_int(row: dict[str, Any], key: str, i: int, lo: int, hi: int) -> int:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise DecodeError(f"sample {i}: '{key}' must be an integer", "field")
    if not lo <= v <= hi:
        raise DecodeError(f"sample {i}: '{key}'={v} outside {lo}..{hi}", "field")
    return v
