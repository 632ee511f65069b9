"""PostgreSQL binary COPY streams built with numpy: no Python work per value.

A binary COPY row is a field count followed by (length, big-endian value) per field, with
length -1 and no value for NULL. Rows of equal shape (the same missing values, the same device
id length) are fixed-width records, so each shape is one numpy structured array; a batch has
few shapes. See https://www.postgresql.org/docs/current/sql-copy.html (Binary Format).
"""

from __future__ import annotations

from functools import cache
from typing import Final

import numpy as np

from ingest.wire import MEASUREMENTS, SampleBatch

SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension
TRAILER: Final = b"\xff\xff"
#: 2000-01-01 UTC (PostgreSQL's timestamp epoch) in Unix milliseconds.
PG_EPOCH_MS: Final = 946_684_800_000

#: Column order of `telemetry_copy` (the device id last: it is the only variable-width field).
TELEMETRY_COLUMNS: Final = ("ts", "seq", *MEASUREMENTS, "flags", "device_id")
#: Column order and types of `stage_copy`: fixed width, NaN kept, device as a table index.
STAGE_COLUMNS: Final = (
    ("i", "int4"),
    ("dev", "int4"),
    ("ts", "timestamptz"),
    ("seq", "int8"),
    *((m, "float8" if m in ("lat", "lon") else "float4") for m in MEASUREMENTS),
    ("flags", "int2"),
)

_FLOAT64: Final = frozenset({"lat", "lon"})


def _pg_float(m: str) -> str:
    return ">f8" if m in _FLOAT64 else ">f4"


@cache
def _telemetry_dtype(null_mask: int, id_len: int) -> np.dtype[np.void]:
    fields: list[tuple[str, str]] = [("nf", ">i2"), ("l_ts", ">i4"), ("ts", ">i8")]
    fields += [("l_seq", ">i4"), ("seq", ">i8")]
    for k, m in enumerate(MEASUREMENTS):
        fields.append((f"l_{m}", ">i4"))
        if not null_mask >> k & 1:
            fields.append((m, _pg_float(m)))
    fields += [("l_flags", ">i4"), ("flags", ">i2"), ("l_dev", ">i4"), ("dev", f"S{id_len}")]
    return np.dtype(fields)


def _null_mask(batch: SampleBatch) -> np.ndarray:
    mask = np.zeros(len(batch), dtype=np.int32)
    for k, m in enumerate(MEASUREMENTS):
        mask |= np.isnan(getattr(batch, m)).astype(np.int32) << k
    return mask


def telemetry_copy(batch: SampleBatch) -> bytes:
    """The whole COPY stream of ``batch`` for ``COPY telemetry (TELEMETRY_COLUMNS) FROM STDIN
    (FORMAT BINARY)``; NaN becomes NULL. Rows of one shape stay in batch order."""
    ids = [d.encode("ascii") for d in batch.devices]
    id_table = np.array(ids, dtype=f"S{max((len(i) for i in ids), default=1)}")
    id_len = np.array([len(i) for i in ids], dtype=np.int32)
    keys = _null_mask(batch) | (id_len[batch.dev] << 8) if len(batch) else np.zeros(0, np.int32)
    parts = [SIGNATURE]
    shapes = np.unique(keys)
    order = np.argsort(keys, kind="stable") if len(shapes) > 1 else None
    start = 0
    for key in shapes.tolist():
        if order is None:
            rows: slice | np.ndarray = slice(None)
            count = len(batch)
        else:
            count = int(np.count_nonzero(keys == key))
            rows = order[start : start + count]
            start += count
        parts.append(_telemetry_rows(batch, rows, count, key & 0xFF, key >> 8, id_table))
    parts.append(TRAILER)
    return b"".join(parts)


def _telemetry_rows(
    batch: SampleBatch,
    rows: slice | np.ndarray,
    count: int,
    null_mask: int,
    id_len: int,
    id_table: np.ndarray,
) -> bytes:
    out = np.empty(count, dtype=_telemetry_dtype(null_mask, id_len))
    out["nf"] = len(TELEMETRY_COLUMNS)
    out["l_ts"] = 8
    out["ts"] = (batch.ts_ms[rows] - PG_EPOCH_MS) * 1000
    out["l_seq"] = 8
    out["seq"] = batch.seq[rows]
    for k, m in enumerate(MEASUREMENTS):
        if null_mask >> k & 1:
            out[f"l_{m}"] = -1
        else:
            out[f"l_{m}"] = 8 if m in _FLOAT64 else 4
            out[m] = getattr(batch, m)[rows]
    out["l_flags"] = 2
    out["flags"] = batch.flags[rows]
    out["l_dev"] = id_len
    out["dev"] = id_table[batch.dev[rows]]
    return out.tobytes()


_BIG_ENDIAN: Final = {
    "int2": ">i2",
    "int4": ">i4",
    "int8": ">i8",
    "timestamptz": ">i8",
    "float4": ">f4",
    "float8": ">f8",
}
_STAGE_DTYPE: Final = np.dtype(
    [("nf", ">i2")]
    + [f for name, t in STAGE_COLUMNS for f in ((f"l_{name}", ">i4"), (name, _BIG_ENDIAN[t]))]
)


def stage_copy(batch: SampleBatch) -> bytes:
    """The COPY stream of ``batch`` for a staging table with `STAGE_COLUMNS`: every row the same
    width (NaN stays NaN, the device is its index in ``batch.devices``, ``i`` the row number)."""
    out = np.empty(len(batch), dtype=_STAGE_DTYPE)
    out["nf"] = len(STAGE_COLUMNS)
    for name, pg_type in STAGE_COLUMNS:
        out[f"l_{name}"] = int(_BIG_ENDIAN[pg_type][2])
    out["i"] = np.arange(len(batch))
    out["dev"] = batch.dev
    out["ts"] = (batch.ts_ms - PG_EPOCH_MS) * 1000
    out["seq"] = batch.seq
    for m in MEASUREMENTS:
        out[m] = getattr(batch, m)
    out["flags"] = batch.flags
    return SIGNATURE + out.tobytes() + TRAILER
