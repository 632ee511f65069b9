"""The newest sample of every device, as columns (the live stream's source).

The ingest's after-commit hook writes a batch into the table with a few numpy operations (no
per-sample Python work); readers take columns of selected rows. Each device has a slot; a
change sequence per slot tells which devices changed since a reader last looked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ingest.wire import MEASUREMENTS, RECORD_DTYPE, SampleBatch

#: Columns of the table besides the device id, in the order the live frames list them.
COLUMNS: tuple[str, ...] = ("ts_ms", "flags", *MEASUREMENTS)
_DTYPES = {name: RECORD_DTYPE.fields[name][0] for name in COLUMNS}  # type: ignore[index]
_F64 = tuple(m for m in MEASUREMENTS if _DTYPES[m] == np.float64)  # lat, lon: 6 decimals


class LatestTable:
    """Newest sample per device; a late sample never replaces a newer one."""

    def __init__(self, capacity: int = 1024) -> None:
        self._slot: dict[str, int] = {}
        self._ids = np.empty(capacity, dtype=object)
        self._cols = {name: np.zeros(capacity, dtype=_DTYPES[name]) for name in COLUMNS}
        self._cols["ts_ms"][:] = np.iinfo(np.int64).min
        self._changed = np.zeros(capacity, dtype=np.int64)
        self.seq = 0  # bumped by every batch that changed something

    def __len__(self) -> int:
        return len(self._slot)

    def slot(self, device: str) -> int:
        """The device's slot (a new one for a device not seen before)."""
        slot = self._slot.get(device)
        if slot is None:
            slot = self._slot[device] = len(self._slot)
            if slot == len(self._ids):
                self._grow()
            self._ids[slot] = device
        return slot

    def slot_of(self, device: str) -> int | None:
        return self._slot.get(device)

    def devices(self) -> Iterator[str]:
        return iter(self._slot)

    def write(self, batch: SampleBatch) -> int:
        """Record the newest sample of each device of ``batch``; returns how many changed."""
        if not len(batch):
            return 0
        table = np.fromiter((self.slot(d) for d in batch.devices), np.int64, len(batch.devices))
        order = np.lexsort((batch.seq, batch.ts_ms))  # oldest first: the last one wins
        slots = table[batch.dev[order]]
        # The last occurrence of each slot in time order: unique over the reversed order.
        _, first_rev = np.unique(slots[::-1], return_index=True)
        rows = order[len(order) - 1 - first_rev]
        slots = table[batch.dev[rows]]
        newer = batch.ts_ms[rows] >= self._cols["ts_ms"][slots]
        rows, slots = rows[newer], slots[newer]
        if not len(rows):
            return 0
        self.seq += 1
        for name in COLUMNS:
            self._cols[name][slots] = getattr(batch, name)[rows]
        self._changed[slots] = self.seq
        return len(rows)

    def changed_since(self, slots: npt.NDArray[np.int64], seq: int) -> npt.NDArray[np.int64]:
        """Those of ``slots`` whose sample changed after sequence ``seq`` (0: ever written)."""
        return slots[self._changed[slots] > seq]

    def columns(self, slots: npt.NDArray[np.int64]) -> dict[str, Any]:
        """The rows ``slots`` as columns (``device_id`` first; NaN is encoded as null)."""
        out: dict[str, Any] = {"device_id": self._ids[slots].tolist()}
        for name in COLUMNS:
            col = self._cols[name][slots]
            out[name] = np.round(col, 6) if name in _F64 else col
        return out

    def row(self, device: str) -> dict[str, Any] | None:
        """One device's newest sample as a JSON-ready dict (None: never seen or no sample)."""
        slot = self._slot.get(device)
        if slot is None or self._changed[slot] == 0:
            return None
        out: dict[str, Any] = {"device_id": device}
        for name in COLUMNS:
            v = self._cols[name][slot].item()
            if isinstance(v, float):
                v = None if math.isnan(v) else round(v, 6)
            out[name] = v
        return out

    def positions(self) -> dict[str, tuple[float, float]]:
        """The newest known position of every device that has one."""
        n = len(self._slot)
        lat, lon = self._cols["lat"][:n], self._cols["lon"][:n]
        ok = np.flatnonzero((self._changed[:n] > 0) & ~np.isnan(lat) & ~np.isnan(lon))
        pairs = zip(lat[ok].tolist(), lon[ok].tolist(), strict=True)
        return dict(zip(self._ids[ok].tolist(), pairs, strict=True))

    def _grow(self) -> None:
        size = 2 * len(self._ids)
        ids = np.empty(size, dtype=object)
        ids[: len(self._ids)] = self._ids
        self._ids = ids
        for name, col in self._cols.items():
            bigger = np.zeros(size, dtype=col.dtype)
            if name == "ts_ms":
                bigger[:] = np.iinfo(np.int64).min
            bigger[: len(col)] = col
            self._cols[name] = bigger
        changed = np.zeros(size, dtype=np.int64)
        changed[: len(self._changed)] = self._changed
        self._changed = changed


class LatestView(Mapping[str, dict[str, Any]]):
    """``device → newest sample`` as dicts, built on access (for REST answers)."""

    def __init__(self, table: LatestTable) -> None:
        self._table = table

    def __getitem__(self, device: str) -> dict[str, Any]:
        row = self._table.row(device)
        if row is None:
            raise KeyError(device)
        return row

    def __iter__(self) -> Iterator[str]:
        return (d for d in list(self._table.devices()) if self._table.row(d) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)
