"""The public recordings in ``shared/datasets`` converted to the replay layout, with truth.

Used by the evaluation and the tests. ``find_datasets`` looks for ``<repo>/../shared/datasets``
(where CI puts a copy beside the clone) and then ``$PP_DATASETS``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from detectors.replay import Telemetry
from ingest.wire import RECORD_DTYPE

#: Recordings carry no date; replays put them on this day (UTC ms) at their time of day.
DAY0_MS: Final = 1_717_200_000_000  # 2024-06-01T00:00:00Z
OXIMETERS: Final = (1, 2, 3, 4, 5)
DEAD_OXIMETER: Final = 3


def find_datasets() -> Path | None:
    """``<repo>/../shared/datasets`` (or one level further up), else ``$PP_DATASETS``."""
    repo = Path(__file__).resolve().parents[1]
    # CI: a copy of shared/ beside the clone; a developer's worktree may sit one level deeper.
    candidates = [repo.parent / "shared" / "datasets", repo.parent.parent / "shared" / "datasets"]
    for candidate in (*candidates, os.environ.get("PP_DATASETS")):
        if candidate and (Path(candidate) / "oximetry").is_dir():
            return Path(candidate)
    return None


@dataclass
class Recording:
    """A converted recording: telemetry, the truth incidents, and the devices it covers."""

    name: str
    telemetry: Telemetry
    truth: list[dict[str, Any]] = field(default_factory=list)
    incident_free: bool = False


def _num(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return np.nan


def oximetry(path: Path) -> Recording:
    """One oximetry file: each of the five oximeters is a device ``ox<file>-<j>``.

    Truth: ``spo2_low`` episodes of each working oximeter (`episodes`: raw SpO2 < 90 %
    sustained for 15 s, the clinical event the critical alarm is for), ``spo2_low_warning``
    episodes (< 94 % for 60 s, the warning's event), and ``sensor_fault`` for oximeter 3
    from its first sample (it reads 0 throughout).
    """
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    head = {k.strip(): i for i, k in enumerate(rows[0])}
    body = [r for r in rows[1:] if r and r[0].strip().count(":") == 2]
    secs = np.array([_clock(r[0]) for r in body], dtype=np.int64)
    ts = DAY0_MS + secs * 1000
    name = path.stem
    devices = tuple(f"ox{name}-{j}" for j in OXIMETERS)
    parts = []
    truth: list[dict[str, Any]] = []
    for d, j in enumerate(OXIMETERS):
        rec = np.zeros(len(body), dtype=RECORD_DTYPE)
        for col in ("skin_temp", "lat", "lon", "gps_acc", "motion", "battery"):
            rec[col] = np.nan
        rec["dev"] = d
        rec["ts_ms"] = ts
        rec["spo2"] = [_num(r[head[f"SpO2 {j}"]]) for r in body]
        rec["hr"] = [_num(r[head[f"Pulse {j}"]]) for r in body]
        parts.append(rec)
        if j == DEAD_OXIMETER:
            truth.append(
                {"device_id": devices[d], "kind": "sensor_fault", "onset_ms": int(ts[0]),
                 "end_ms": int(ts[-1])}
            )  # fmt: skip
        else:
            spo2 = rec["spo2"].astype(np.float64)
            truth += [
                {"device_id": devices[d], "kind": "spo2_low", "onset_ms": a, "end_ms": b}
                for a, b in episodes(ts, spo2 < 90.0)
            ]
            truth += [
                {"device_id": devices[d], "kind": "spo2_low_warning", "onset_ms": a, "end_ms": b}
                for a, b in episodes(ts, spo2 < 94.0, min_ms=60_000)
            ]
    rec = np.concatenate(parts)
    rec = rec[np.argsort(rec["ts_ms"], kind="stable")]
    return Recording(f"oximetry/{name}", Telemetry(devices, rec), truth)


def episodes(
    ts: np.ndarray,
    below: np.ndarray,
    *,
    min_ms: int = 15_000,
    bridge_ms: int = 2_000,
    merge_ms: int = 60_000,
) -> list[tuple[int, int]]:
    """Sustained episodes: (onset, end) where ``below`` held for ``min_ms`` or more.

    A run tolerates breaks up to ``bridge_ms`` (a one-sample blip); an episode starts with
    the first run that lasts ``min_ms`` and absorbs every run that follows within
    ``merge_ms``; it ends at its last ``below`` sample.
    """
    runs: list[list[int]] = []
    for i in np.flatnonzero(below).tolist():
        t = int(ts[i])
        if runs and t - runs[-1][1] <= bridge_ms:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    out: list[list[int]] = []
    for a, b in runs:
        if out and a - out[-1][1] <= merge_ms:
            out[-1][1] = b
        elif b - a >= min_ms:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _clock(cell: str) -> int:
    h, m, s = (int(x) for x in cell.strip().split(":"))
    return h * 3600 + m * 60 + s


def empatica(folder: Path) -> Recording:
    """The Empatica E4 session as one device ``e4``: HR (1 Hz), skin temperature (4 Hz
    averaged per second), motion = RMS of |a| − 1 g per second (32 Hz). Incident-free."""
    hr_start, hr = _e4(folder / "HR.csv")
    t_start, temp = _e4(folder / "TEMP.csv")
    a_start, acc = _e4(folder / "ACC.csv")
    t0 = int(min(hr_start, t_start, a_start))
    t1 = int(max(hr_start + len(hr), t_start + len(temp) / 4, a_start + len(acc) / 32))
    n = t1 - t0
    rec = np.zeros(n, dtype=RECORD_DTYPE)
    for col in ("hr", "skin_temp", "spo2", "lat", "lon", "gps_acc", "motion", "battery"):
        rec[col] = np.nan
    rec["ts_ms"] = (t0 + np.arange(n)) * 1000
    k = int(hr_start) - t0
    rec["hr"][k : k + len(hr)] = hr[: n - k]
    skin = _per_second(temp, 4)
    k = int(t_start) - t0
    rec["skin_temp"][k : k + len(skin)] = skin
    mag = np.linalg.norm(acc.reshape(-1, 3) / 64.0, axis=1)
    motion = np.sqrt(_per_second((mag - 1.0) ** 2, 32))
    k = int(a_start) - t0
    rec["motion"][k : k + len(motion)] = motion
    return Recording("empatica", Telemetry(("e4",), rec), [], incident_free=True)


def _e4(path: Path) -> tuple[float, np.ndarray]:
    raw = np.loadtxt(path, delimiter=",", ndmin=2)
    return float(raw[0, 0]), raw[2:].reshape(-1) if raw.shape[1] == 1 else raw[2:]


def _per_second(x: np.ndarray, rate: int) -> np.ndarray:
    whole = len(x) // rate * rate
    out: np.ndarray = np.asarray(x[:whole], dtype=np.float64).reshape(-1, rate).mean(axis=1)
    return out


def all_recordings(root: Path) -> list[Recording]:
    """Every oximetry file and the Empatica session."""
    recs = [oximetry(p) for p in sorted((root / "oximetry").glob("1*.csv"))]
    recs.append(empatica(root / "empatica"))
    return recs
