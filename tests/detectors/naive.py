"""Plain-numpy references of every detector kernel, one device at a time.

Written for clarity, not speed: each function takes one device's series and returns the
per-sample scores the kernel should produce. `levels` replays the policy's rules over those
scores. Tests compare these with the Numba kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.config import DetectorSettings

Q_HR, Q_SPO2, Q_SKIN, Q_GPS, Q_MOTION, Q_FRESH = 1, 2, 4, 8, 16, 32


def f32(limit: float) -> float:
    """Limits on float32 wire values are compared at float32 precision."""
    return float(np.float32(limit))


@dataclass
class Series:
    """One device's samples (float64 columns, NaN = missing)."""

    ts: np.ndarray
    hr: np.ndarray
    spo2: np.ndarray
    skin: np.ndarray
    motion: np.ndarray
    flags: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    gps_acc: np.ndarray

    @classmethod
    def make(cls, ts: Any, **cols: Any) -> Series:
        ts = np.asarray(ts, dtype=np.int64)
        n = len(ts)
        full = {
            k: np.full(n, np.nan) for k in ("hr", "spo2", "skin", "motion", "lat", "lon", "gps_acc")
        }
        full["flags"] = np.zeros(n, dtype=np.int64)
        for k, v in cols.items():
            full[k] = np.asarray(v, dtype=np.int64 if k == "flags" else np.float64)
        # the kernels read float32 columns for these: compare on the same values
        for k in ("hr", "spo2", "skin", "motion", "gps_acc"):
            full[k] = full[k].astype(np.float32).astype(np.float64)
        return cls(ts=ts, **full)


# --------------------------------------------------------------------------- policy


def levels(
    ts: np.ndarray,
    scores: np.ndarray,
    vals: np.ndarray,
    rules: list[tuple[int, int, str, int, int]],
    on: list[float],
    off: list[float],
) -> list[tuple[int, int, int, float]]:
    """(ts, kind index, new level, value) for every level change.

    ``rules``: (kind index, severity, op, hold_ms, clear_ms); ``scores``/``vals``: n × rules.
    """
    ops = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
    r_n = len(rules)
    active = [False] * r_n
    since: list[int | None] = [None] * r_n
    csince: list[int | None] = [None] * r_n
    kinds = sorted({r[0] for r in rules})
    level = dict.fromkeys(kinds, 0)
    out = []
    for i, t in enumerate(ts.tolist()):
        for r, (_, _, op, hold, clear) in enumerate(rules):
            s = scores[i, r]
            if math.isnan(s):
                continue
            if not active[r]:
                if ops[op](s, on[r]):
                    since[r] = t if since[r] is None else since[r]
                    if t - since[r] >= hold:
                        active[r], since[r], csince[r] = True, None, None
                else:
                    since[r] = None
            elif ops[op](s, off[r]):
                csince[r] = None
            else:
                csince[r] = t if csince[r] is None else csince[r]
                if t - csince[r] >= clear:
                    active[r], since[r], csince[r] = False, None, None
        for k in kinds:
            mine = [r for r in range(r_n) if rules[r][0] == k]
            act = [r for r in mine if active[r]]
            new = max((rules[r][1] for r in act), default=0)
            if new != level[k]:
                if new:
                    best = max(act, key=lambda r: (rules[r][1], -r))
                    value = vals[i, best]
                else:
                    value = vals[i, mine[0]]
                out.append((t, k, new, float(value)))
                level[k] = new
    return out


# --------------------------------------------------------------------------- quality


def quality(x: Series, s: DetectorSettings) -> tuple[np.ndarray, np.ndarray]:
    """Quality bits per sample and the sensor-fault score (max bad fraction; NaN when no
    physiological channel is present in the sample)."""
    n = len(x.ts)
    lo = [f32(s.hr_min_bpm), f32(s.spo2_min_pct), f32(s.skin_min_c)]
    hi = [f32(s.hr_max_bpm), f32(s.spo2_max_pct), f32(s.skin_max_c)]
    roc = [s.hr_roc_bpm_s, s.spo2_roc_pct_s, s.skin_roc_c_s]
    flat = [round(s.hr_flat_s * 1000), round(s.spo2_flat_s * 1000), round(s.skin_flat_s * 1000)]
    gap, tau = round(s.gap_s * 1000), round(s.fault_tau_s * 1000)
    chans = [x.hr, x.spo2, x.skin]
    q = np.zeros(n, dtype=np.int64)
    fault = np.full(n, np.nan)
    frac = [0.0, 0.0, 0.0]
    last_v = [math.nan] * 3
    last_t = [-1] * 3
    flat_t = [-1] * 3
    prev = -1
    for i in range(n):
        t = int(x.ts[i])
        if prev >= 0 and t <= prev:
            continue
        prev = t
        bits = Q_FRESH
        present = False
        for c in range(3):
            v = chans[c][i]
            if math.isnan(v):
                continue
            present = True
            bad = not lo[c] <= v <= hi[c]
            if last_t[c] >= 0 and t - last_t[c] <= gap:
                dt = (t - last_t[c]) / 1000
                if abs(v - last_v[c]) / dt > roc[c]:
                    bad = True
                if v != last_v[c]:
                    flat_t[c] = t
                elif t - flat_t[c] >= flat[c]:
                    bad = True
                step = t - last_t[c]
            else:
                flat_t[c] = t
                step = 1000
            frac[c] += (1 - math.exp(-step / tau)) * (float(bad) - frac[c])
            last_v[c], last_t[c] = v, t
            if not bad:
                bits |= 1 << c
        if not (
            math.isnan(x.lat[i]) or math.isnan(x.lon[i]) or x.gps_acc[i] > f32(s.gps_acc_max_m)
        ):
            bits |= Q_GPS
        if not math.isnan(x.motion[i]):
            bits |= Q_MOTION
        q[i] = bits
        if present:
            fault[i] = max(frac)
    return q, fault


# --------------------------------------------------------------------------- aggregation


def minutes(ts: np.ndarray, hr: np.ndarray, good: np.ndarray, min_samples: int) -> np.ndarray:
    """Closed minutes as rows (end_ts, mean HR or NaN, count): every minute with a sample,
    except the last one (it closes only when a later minute's sample arrives)."""
    fresh = (good & Q_FRESH) > 0
    keys = ts // 60000
    order = np.unique(keys[fresh])
    rows = []
    for m in order[:-1]:
        sel = fresh & (keys == m) & (good & Q_HR > 0)
        k = int(sel.sum())
        rows.append(
            (float((m + 1) * 60000), float(hr[sel].mean()) if k >= min_samples else np.nan, k)
        )
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def ectemp(hr: np.ndarray, minute: np.ndarray, s: DetectorSettings) -> np.ndarray:
    """Core temperature after each minute record (Buller et al. 2013)."""
    x, v = s.ct_start_c, 0.0
    out = np.empty(len(hr))
    last = None
    for j, (h, m) in enumerate(zip(hr, minute, strict=True)):
        v += 0.022**2 * (1 if last is None else m - last)
        last = m
        if not math.isnan(h) and s.ct_hr_min_bpm <= h <= s.ct_hr_max_bpm:
            slope = 2 * -4.5714 * x + 384.4286
            gain = v * slope / (slope**2 * v + 18.88**2)
            x += gain * (h - (-4.5714 * x**2 + 384.4286 * x - 7887.1))
            v *= 1 - gain * slope
        out[j] = x
    return out


def psi(ct: np.ndarray, hr: np.ndarray, hr0: float, s: DetectorSettings) -> np.ndarray:
    ct0 = s.ct_start_c
    p = 5 * (ct - ct0) / (s.psi_ct_max_c - ct0) + 5 * (hr - hr0) / (s.psi_hr_max_bpm - hr0)
    return np.clip(p, 0, 10)


def sustained(hr: np.ndarray, minute: np.ndarray, limit: float, hyst: float) -> np.ndarray:
    count = 0
    out = np.empty(len(hr))
    last = None
    for j, (h, m) in enumerate(zip(hr, minute, strict=True)):
        if math.isnan(h) or (last is not None and m != last + 1):
            count = 0
        if not math.isnan(h):
            if h > limit:
                count += 1
            elif h < limit - hyst:
                count = 0
        last = m
        out[j] = count
    return out


def cusum(hr: np.ndarray, warmup: int, k: float, floor: float, rho: float) -> np.ndarray:
    """Upper CUSUM per minute record; NaN during warm-up or for missing minutes. σ is the
    warm-up's (floored) σ inflated to the long-run σ of AR(1) means: σ·√((1+ρ)/(1−ρ))."""
    out = np.full(len(hr), np.nan)
    base: list[float] = []
    acc = 0.0
    sigma = math.nan
    for j, h in enumerate(hr):
        if math.isnan(h):
            continue
        if len(base) < warmup:
            base.append(float(h))
            if len(base) == warmup:
                sd = max(float(np.std(base, ddof=1)), floor)
                sigma = sd * math.sqrt((1 + rho) / (1 - rho))
            continue
        acc = max(0.0, acc + (h - float(np.mean(base))) / sigma - k)
        out[j] = acc
    return out


# --------------------------------------------------------------------------- per sample


def spo2_avg(x: Series, good: np.ndarray, s: DetectorSettings) -> np.ndarray:
    """Window mean of the last ≤ 32 good SpO2 samples with ts in (t − window, t]."""
    w = round(s.spo2_avg_s * 1000)
    idx = np.flatnonzero((good & Q_FRESH > 0) & (good & Q_SPO2 > 0))
    out = np.full(len(x.ts), np.nan)
    for p, i in enumerate(idx):
        recent = idx[max(0, p - 31) : p + 1]
        recent = recent[x.ts[recent] > x.ts[i] - w]
        if len(recent) >= s.spo2_min_samples:
            out[i] = x.spo2[recent].mean()
    return out


def skin(x: Series, good: np.ndarray, s: DetectorSettings) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed level and rate (°C/min) after each good skin sample (NaN elsewhere)."""
    tau, gap = s.skin_tau_s * 1000, s.gap_s * 1000
    level, rate = np.full(len(x.ts), np.nan), np.full(len(x.ts), np.nan)
    lv, rt, last = math.nan, 0.0, None
    for i in np.flatnonzero((good & Q_SKIN) > 0):
        t, v = int(x.ts[i]), x.skin[i]
        if last is None or t - last > gap:
            lv, rt = v, 0.0
        else:
            a = 1 - math.exp(-(t - last) / tau)
            new = lv + a * (v - lv)
            rt += a * ((new - lv) / ((t - last) / 60000) - rt)
            lv = new
        last = t
        level[i], rate[i] = lv, rt
    return level, rate


def man_down(x: Series, good: np.ndarray, s: DetectorSettings) -> tuple[np.ndarray, ...]:
    """sos (0/1), fall (0/1/2) and still seconds after each fresh sample."""
    n = len(x.ts)
    sos, fall, still = np.zeros(n), np.zeros(n), np.zeros(n)
    gap = s.motion_gap_s * 1000
    still_since = motion_t = sos_last = fall_start = fall_last = None
    for i in np.flatnonzero(good & Q_FRESH):
        t = int(x.ts[i])
        if good[i] & Q_MOTION:
            if x.motion[i] < f32(s.still_motion_g):
                if still_since is None or t - motion_t > gap:
                    still_since = t
            else:
                still_since = None
            motion_t = t
        elif motion_t is not None and t - motion_t > gap:
            still_since = None
        still[i] = (t - still_since) / 1000 if still_since is not None else 0.0
        if x.flags[i] & 1:
            sos_last = t
        sos[i] = float(sos_last is not None and t - sos_last <= s.sos_latch_s * 1000)
        if x.flags[i] & 2:
            fall_start = t if fall_start is None else fall_start
            fall_last = t
        if fall_start is not None:
            if t - fall_last >= s.fall_latch_s * 1000 and still_since is None:
                fall_start = None
            else:
                fall[i] = 1.0
                if (
                    still_since is not None
                    and t - max(still_since, fall_start) >= s.fall_still_s * 1000
                ):
                    fall[i] = 2.0
    return sos, fall, still


def recovery(x: Series, good: np.ndarray, s: DetectorSettings) -> np.ndarray:
    """The recovery score (HR 1 min into a rest after effort, then following HR down)."""
    n = len(x.ts)
    out = np.full(n, np.nan)
    gap = s.gap_s * 1000
    hs = hs_t = ms_ = ms_t = active_since = rest_start = None
    rec = math.nan
    for i in np.flatnonzero(good & Q_FRESH):
        t = int(x.ts[i])
        if good[i] & Q_HR:
            if hs_t is None or t - hs_t > gap:
                hs = x.hr[i]
            else:
                hs += (1 - math.exp(-(t - hs_t) / (s.hr_smooth_s * 1000))) * (x.hr[i] - hs)
            hs_t = t
        if good[i] & Q_MOTION:
            if ms_t is None or t - ms_t > gap:
                ms_, active_since, rest_start = x.motion[i], None, None
            else:
                ms_ += (1 - math.exp(-(t - ms_t) / 5000)) * (x.motion[i] - ms_)
            ms_t = t
            if ms_ >= f32(s.rest_motion_g):
                active_since = t if active_since is None else active_since
                rest_start = None
            else:
                if active_since is not None and t - active_since >= s.active_min_s * 1000:
                    rest_start = t
                active_since = None
        fresh = hs_t is not None and t - hs_t <= gap
        if rest_start is not None and t - rest_start >= s.recovery_after_s * 1000 and fresh:
            rec, rest_start = hs, None
        elif not math.isnan(rec) and fresh:
            rec = min(rec, hs)
        out[i] = rec
    return out


def distance_m(lat1: float, lon1: float, lat2: Any, lon2: Any) -> Any:
    """Great-circle (haversine) distance; the kernel's equirectangular one must agree
    within a few centimetres over a few hundred metres."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))


def offline(ts: np.ndarray, warn_ms: int, crit_ms: int, now: int) -> list[tuple[int, int]]:
    """(ts, level) of device_offline changes for one monitored device's sample times."""
    out = []
    for a, b in zip([*ts[:-1].tolist(), ts[-1]], [*ts[1:].tolist(), now], strict=True):
        raised = False
        if b - a >= warn_ms:
            out.append((a + warn_ms, 2))
            raised = True
        if b - a >= crit_ms:
            out.append((a + crit_ms, 3))
        if raised and b != now:
            out.append((b, 0))
    return out
