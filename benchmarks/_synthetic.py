"""Synthetic scenarios with known incident onsets, in the replay layout (until the simulator's
exports exist). Seeded; every incident's truth is written alongside.

The physiology is deliberately simple and is not the simulator's: core temperature follows
work with a 20-minute lag; heart rate is the ECTemp observation curve of that temperature
plus a work component and noise. Because the heart rate is generated through the same curve
the estimator inverts, the core-temperature RMSE measured here is optimistic.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from detectors.core_temp import C0, C1, C2
from detectors.datasets import DAY0_MS, episodes
from detectors.models import Geofence, WorkerProfile
from detectors.replay import CSV_HEADER, Telemetry, read_permits, read_workers
from ingest.wire import RECORD_DTYPE

SITE_LAT, SITE_LON = 30.7395, 121.3442
M_PER_DEG = 111_195.0


def hr_of_ct(ct: np.ndarray) -> np.ndarray:
    return C2 * ct * ct + C1 * ct + C0


@dataclass
class Fleet:
    """Per-device 1 Hz series (devices × seconds)."""

    ids: list[str]
    n_sec: int
    rng: np.random.Generator
    t0_ms: int = DAY0_MS + 8 * 3600 * 1000
    cols: dict[str, np.ndarray] = field(default_factory=dict)
    ct: np.ndarray = field(default_factory=lambda: np.empty(0))
    truth: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    permits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ts(self) -> np.ndarray:
        return self.t0_ms + np.arange(self.n_sec, dtype=np.int64) * 1000

    def add_truth(self, d: int, kind: str, a: int, b: int, **extra: Any) -> None:
        ts = self.ts
        self.truth.append(
            {"device_id": self.ids[d], "kind": kind, "onset_ms": int(ts[a]),
             "end_ms": int(ts[min(b, self.n_sec - 1)]), **extra}
        )  # fmt: skip


def normal_day(ids: list[str], n_sec: int, seed: int) -> Fleet:
    """Incident-free work: bouts of work and rest, noise, short dropouts, GPS inside a fence."""
    rng = np.random.default_rng(seed)
    f = Fleet(ids, n_sec, rng)
    n = len(ids)
    work = np.zeros((n, n_sec))
    for d in range(n):
        t = 0
        while t < n_sec:
            length = int(rng.uniform(180, 900))
            work[d, t : t + length] = rng.choice([0.0, rng.uniform(0.3, 0.8)], p=[0.4, 0.6])
            t += length
    # core temperature follows work with a 20-minute lag
    ct = np.empty((n, n_sec))
    x = np.full(n, 37.0)
    a = 1.0 - np.exp(-1.0 / 1200.0)
    for t in range(n_sec):
        x += a * (37.0 + 0.6 * work[:, t] - x)
        ct[:, t] = x
    slow = _ar1(rng, (n, n_sec), tau=120.0, sd=3.0)
    hr = hr_of_ct(ct) + 20.0 * _smooth(work, 60.0) + slow + rng.normal(0, 2.0, (n, n_sec))
    motion = np.where(work > 0, 0.1 + 0.4 * work, 0.03) + np.abs(rng.normal(0, 0.015, (n, n_sec)))
    spo2 = np.clip(np.round(97.5 + _ar1(rng, (n, n_sec), tau=20.0, sd=0.8)), 50, 100)
    skin = 33.0 + 1.0 * _smooth(work, 600.0) + _ar1(rng, (n, n_sec), tau=300.0, sd=0.3)
    east = _ar1(rng, (n, n_sec), tau=600.0, sd=12.0)
    north = _ar1(rng, (n, n_sec), tau=600.0, sd=12.0)
    f.cols = {
        "hr": np.round(hr),
        "skin_temp": np.round(skin, 2),
        "spo2": spo2,
        "lat": SITE_LAT + north / M_PER_DEG,
        "lon": SITE_LON + east / (M_PER_DEG * np.cos(np.radians(SITE_LAT))),
        "gps_acc": rng.uniform(3, 8, (n, n_sec)),
        "motion": np.round(motion, 4),
        "battery": np.round(np.linspace(100, 60, n_sec)[None, :].repeat(n, 0)),
        "flags": np.zeros((n, n_sec)),
    }
    f.ct = ct
    # short dropouts (radio): 3–8 s, a few per hour; single missing HR values
    for d in range(n):
        for start in rng.integers(0, n_sec - 10, size=max(1, n_sec // 1200)):
            f.cols["hr"][d, start : start + rng.integers(3, 9)] = np.nan
    miss = rng.random((n, n_sec)) < 0.003
    f.cols["spo2"][miss] = np.nan
    f.workers = [
        {"device_id": i, "worker_id": f"w-{i}", "age": int(rng.integers(22, 58)),
         "acclimatized": bool(rng.random() < 0.5), "resting_hr": 65.0}
        for i in ids
    ]  # fmt: skip
    return f


def _ar1(rng: np.random.Generator, shape: tuple[int, int], *, tau: float, sd: float) -> np.ndarray:
    a = np.exp(-1.0 / tau)
    e = rng.normal(0, sd * np.sqrt(1 - a * a), shape)
    out = np.empty(shape)
    x = rng.normal(0, sd, shape[0])
    for t in range(shape[1]):
        x = a * x + e[:, t]
        out[:, t] = x
    return out


def _smooth(x: np.ndarray, tau: float) -> np.ndarray:
    a = 1.0 - np.exp(-1.0 / tau)
    out = np.empty_like(x)
    y = x[:, 0].copy()
    for t in range(x.shape[1]):
        y += a * (x[:, t] - y)
        out[:, t] = y
    return out


def baseline_scenario(seed: int = 1, devices: int = 40, hours: float = 2.0) -> Fleet:
    """Incident-free: ``devices`` workers for ``hours``, all on one permit with a watcher."""
    ids = [f"b-{i:03d}" for i in range(devices)]
    f = normal_day(ids, int(hours * 3600), seed)
    f.permits = [_permit("P-base", ids[1:], ids[0])]
    return f


def _permit(
    pid: str, devices: list[str], watcher: str | None, radius: float = 120.0
) -> dict[str, Any]:
    return {
        "permit_id": pid,
        "type": "confined_space",
        "level": "special",
        "devices": devices,
        "watcher_device": watcher,
        "lat": SITE_LAT,
        "lon": SITE_LON,
        "radius_m": radius,
    }


INCIDENTS = (
    "spo2", "sos", "fall", "heat", "hr_sustained", "recovery", "skin", "fault_flat",
    "fault_zero", "offline", "geofence", "watcher", "drift",
)  # fmt: skip


def incident_scenario(seed: int = 2, per_kind: int = 2, hours: float = 1.75) -> Fleet:
    """Each device has one incident of one type, after a 40–60 min incident-free start."""
    kinds = [k for k in INCIDENTS for _ in range(per_kind)]
    ids = [f"i-{k}-{j}" for j, k in enumerate(kinds)]
    f = normal_day(ids, int(hours * 3600), seed)
    rng = f.rng
    workers_on_permit = [i for i, k in zip(ids, kinds, strict=True) if k != "watcher"]
    watchers = [i for i, k in zip(ids, kinds, strict=True) if k == "watcher"]
    f.permits = [_permit("P-inc", workers_on_permit, watchers[0])]
    f.permits += [_permit(f"P-w{j}", [], w) for j, w in enumerate(watchers[1:])]
    for d, kind in enumerate(kinds):
        onset = int(rng.integers(40 * 60, 60 * 60))
        _INJECT[kind](f, d, onset)
    return f


def _inject_spo2(f: Fleet, d: int, t: int) -> None:
    low = f.rng.uniform(80, 86)
    fall_s, hold_s = int(f.rng.uniform(20, 40)), int(f.rng.uniform(60, 180))
    s = f.cols["spo2"][d]
    base = 97.5
    ramp = np.linspace(base, low, fall_s)
    s[t : t + fall_s] = np.round(ramp)
    s[t + fall_s : t + fall_s + hold_s] = np.round(low + f.rng.normal(0, 0.7, hold_s))
    s[t + fall_s + hold_s : t + fall_s + hold_s + 30] = np.round(np.linspace(low, base, 30))
    for a, b in episodes(f.ts, np.nan_to_num(s, nan=100.0) < 90.0):
        f.truth.append({"device_id": f.ids[d], "kind": "spo2_low", "onset_ms": a, "end_ms": b})


def _inject_sos(f: Fleet, d: int, t: int) -> None:
    f.cols["flags"][d, t : t + 3] = 1
    f.add_truth(d, "sos", t, t + 3)


def _inject_fall(f: Fleet, d: int, t: int) -> None:
    end = t + 300
    f.cols["flags"][d, t] = 2
    f.cols["motion"][d, t] = 1.5
    f.cols["motion"][d, t + 1 : end] = np.round(f.rng.uniform(0.001, 0.005, end - t - 1), 4)
    f.add_truth(d, "fall", t, end)
    f.add_truth(d, "no_motion", t + 1, end)


def _inject_heat(f: Fleet, d: int, t: int) -> None:
    n = f.n_sec - t
    ct0 = f.ct[d, t]
    ramp = ct0 + (39.6 - ct0) * np.clip(np.arange(n) / (60 * 55), 0, 1)
    f.ct[d, t:] = ramp
    hr = hr_of_ct(ramp) + 10.0 + f.rng.normal(0, 3.0, n)
    f.cols["hr"][d, t:] = np.round(hr)
    f.cols["motion"][d, t:] = np.round(0.35 + np.abs(f.rng.normal(0, 0.05, n)), 4)
    cross = t + int(np.argmax(ramp >= 39.0))
    f.add_truth(d, "heat_strain", t, f.n_sec - 1, ct39_ms=int(f.ts[cross]))


def _inject_hr_sustained(f: Fleet, d: int, t: int) -> None:
    age = f.workers[d]["age"]
    hr = 180 - age + 15 + f.rng.normal(0, 3, 480)
    f.cols["hr"][d, t : t + 480] = np.round(hr)
    f.cols["motion"][d, t : t + 480] = 0.5
    f.add_truth(d, "hr_sustained_high", t, t + 480)


def _inject_recovery(f: Fleet, d: int, t: int) -> None:
    work, rest = 600, 300
    f.cols["hr"][d, t : t + work] = np.round(150 + f.rng.normal(0, 3, work))
    f.cols["motion"][d, t : t + work] = 0.5
    if 180 - f.workers[d]["age"] < 150:  # the effort itself is over the sustained-HR limit
        f.add_truth(d, "hr_sustained_high", t, t + work)
    r = t + work
    hr = 140 - 10 * np.clip(np.arange(rest) / 180.0, 0, 1) + f.rng.normal(0, 2, rest)
    f.cols["hr"][d, r : r + rest] = np.round(hr)
    f.cols["motion"][d, r : r + rest] = 0.02
    f.add_truth(d, "hr_recovery_poor", r, r + rest)


def _inject_skin(f: Fleet, d: int, t: int) -> None:
    n = 1500
    skin = f.cols["skin_temp"][d]
    rise = skin[t] + (38.3 - skin[t]) * np.clip(np.arange(n) / 600.0, 0, 1)
    skin[t : t + n] = np.round(rise + f.rng.normal(0, 0.05, n), 2)
    a = t + int(np.argmax(rise >= 37.5))
    f.add_truth(d, "skin_temp_high", a, t + n)


def _inject_fault_flat(f: Fleet, d: int, t: int) -> None:
    f.cols["hr"][d, t : t + 900] = 77.0
    f.add_truth(d, "sensor_fault", t, t + 900)


def _inject_fault_zero(f: Fleet, d: int, t: int) -> None:
    f.cols["spo2"][d, t : t + 600] = 0.0
    f.add_truth(d, "sensor_fault", t, t + 600)


def _inject_offline(f: Fleet, d: int, t: int) -> None:
    for c in f.cols.values():
        c[d, t : t + 240] = np.nan
    f.cols["flags"][d, t : t + 240] = -1  # marker: no row at all
    f.add_truth(d, "device_offline", t, t + 240)


def _walk_out(f: Fleet, d: int, t: int, kind: str) -> None:
    radius = 120.0
    out = 200
    dist = np.concatenate([np.linspace(0, 250, 40), np.full(out, 250.0), np.linspace(250, 0, 40)])
    n = len(dist)
    f.cols["lat"][d, t : t + n] = SITE_LAT + dist / M_PER_DEG
    f.cols["lon"][d, t : t + n] = SITE_LON
    a = t + int(np.argmax(dist > radius))
    b = t + n - int(np.argmax(dist[::-1] > radius))
    f.add_truth(d, kind, a, b)


_INJECT = {
    "spo2": _inject_spo2,
    "sos": _inject_sos,
    "fall": _inject_fall,
    "heat": _inject_heat,
    "hr_sustained": _inject_hr_sustained,
    "recovery": _inject_recovery,
    "skin": _inject_skin,
    "fault_flat": _inject_fault_flat,
    "fault_zero": _inject_fault_zero,
    "offline": _inject_offline,
    "geofence": lambda f, d, t: _walk_out(f, d, t, "geofence_exit"),
    "watcher": lambda f, d, t: _walk_out(f, d, t, "watcher_away"),
    "drift": lambda f, d, t: _inject_drift(f, d, t),
}


def _inject_drift(f: Fleet, d: int, t: int) -> None:
    n = f.n_sec - t
    f.cols["hr"][d, t:] = f.cols["hr"][d, t:] + np.round(np.clip(np.arange(n) / 1500.0, 0, 1) * 25)
    f.add_truth(d, "hr_drift", t, f.n_sec - 1)


def write(f: Fleet, folder: Path, name: str) -> Path:
    """``<name>.csv``, ``.truth.json``, ``.workers.json``, ``.permits.json``, ``.core_temp.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    ts = f.ts
    with (folder / f"{name}.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_HEADER)
        cols = [f.cols[c] for c in CSV_HEADER[2:]]
        for t in range(f.n_sec):
            for d, dev in enumerate(f.ids):
                flags = cols[-1][d, t]
                if flags < 0:
                    continue
                cells = [dev, int(ts[t])]
                cells += [_cell(c[d, t]) for c in cols[:-1]]
                cells.append(int(flags))
                w.writerow(cells)
    (folder / f"{name}.truth.json").write_bytes(orjson.dumps(f.truth, option=orjson.OPT_INDENT_2))
    (folder / f"{name}.workers.json").write_bytes(orjson.dumps(f.workers))
    (folder / f"{name}.permits.json").write_bytes(orjson.dumps(f.permits))
    with (folder / f"{name}.core_temp.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["device_id", "ts_ms", "core_temp"])
        for m in range(59, f.n_sec, 60):
            for d, dev in enumerate(f.ids):
                w.writerow([dev, int(ts[m]) + 1000, round(float(f.ct[d, m]), 3)])
    return folder / f"{name}.csv"


def _cell(v: float) -> str:
    if v != v:
        return ""
    return repr(float(v)) if v != int(v) else str(int(v))


def replay_inputs(f: Fleet) -> tuple[Telemetry, dict[str, WorkerProfile], list[Geofence]]:
    """What the replay would read from `write`'s files, without the (slow) CSV: the same
    rows in the same order (time-major), workers and permits parsed by the replay's readers."""
    n_dev = len(f.ids)
    rec = np.zeros((f.n_sec, n_dev), dtype=RECORD_DTYPE)
    rec["dev"] = np.arange(n_dev)[None, :]
    rec["ts_ms"] = f.ts[:, None]
    for name in CSV_HEADER[2:-1]:
        rec[name] = f.cols[name].T
    flags = f.cols["flags"].T
    rec["flags"] = np.where(flags < 0, 0, flags)
    with tempfile.TemporaryDirectory() as tmp:
        wpath, ppath = Path(tmp) / "w.json", Path(tmp) / "p.json"
        wpath.write_bytes(orjson.dumps(f.workers))
        ppath.write_bytes(orjson.dumps(f.permits))
        return Telemetry(tuple(f.ids), rec[flags >= 0]), read_workers(wpath), read_permits(ppath)
