"""Presence during a permit (GB 30871 4.10): device offline, worker outside the permit's
geofence, watcher away from the work point.

Offline is judged against the clock: `PresenceDetector.tick` raises it for silent devices
at the exact moment the silence crossed each limit (``last sample + limit``), and the next
sample clears it; a sample that arrives after a silence nobody ticked through raises and
clears it in one go, so the events do not depend on how often the clock is read.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from detectors._jit import helper, kernel
from detectors.base import Q_FRESH, Q_GPS, BatchContext, Detector, StateField, drive, ms
from detectors.config import DetectorSettings
from detectors.models import KIND_CODE, AlarmKind, Severity
from detectors.policy import Rule, emit, rules_idle, step_rules

EARTH_RADIUS_M = 6_371_008.8
ROLE_NONE, ROLE_WORKER, ROLE_WATCHER = 0, 1, 2
OFFLINE = KIND_CODE[AlarmKind.DEVICE_OFFLINE]


@helper
def distance_m(lat1, lon1, lat2, lon2):  # type: ignore[no-untyped-def]
    """Equirectangular distance in metres (exact enough within a few km)."""
    rad = math.pi / 180.0
    x = (lon2 - lon1) * rad * math.cos(0.5 * (lat1 + lat2) * rad)
    y = (lat2 - lat1) * rad
    return EARTH_RADIUS_M * math.sqrt(x * x + y * y)


@helper
def distance_bound_m(lat1, lon1, lat2, lon2):  # type: ignore[no-untyped-def]
    """An upper bound of `distance_m` without its cosine: the same operations with the
    cosine replaced by 1. Rounding is monotonic and |cos| ≤ 1, so every intermediate is at
    least as large in magnitude: ``distance_bound_m(...) >= distance_m(...)`` exactly."""
    rad = math.pi / 180.0
    x = (lon2 - lon1) * rad
    y = (lat2 - lat1) * rad
    return EARTH_RADIUS_M * math.sqrt(x * x + y * y)


@helper
def offline_crossings(  # type: ignore[no-untyped-def]
    s, t, last, lvl, warn_ms, crit_ms, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n
):
    """Raise/escalate device_offline for silence crossed by time ``t`` (at crossing time);
    ``lvl`` is the slot's offline level, the new one is returned."""
    if last < 0:
        return lvl
    if lvl < 2 and t - last >= warn_ms:
        emit(ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n, s, OFFLINE, 2, last + warn_ms,
             warn_ms / 1000.0)  # fmt: skip
        lvl = 2
    if lvl < 3 and t - last >= crit_ms:
        emit(ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n, s, OFFLINE, 3, last + crit_ms,
             crit_ms / 1000.0)  # fmt: skip
        lvl = 3
    return lvl


@helper
def offline_seen(  # type: ignore[no-untyped-def]
    s, t, last, lvl, warn_ms, crit_ms, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n
):
    """A monitored slot's sample at ``t``: the silence before it raises (if nobody ticked
    through it) and then clears device_offline. Returns the new offline level (0)."""
    lvl = offline_crossings(
        s, t, last, lvl, warn_ms, crit_ms, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n
    )
    if lvl > 0:
        gap = (t - last) / 1000.0
        emit(ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n, s, OFFLINE, 0, t, gap)
    return 0


@helper
def outside_score(sc, f_lat, f_lon, f_r, la, lo, acc):  # type: ignore[no-untyped-def]
    """Metres outside the circle (negative inside); fills ``sc`` with it less the fix's
    stated accuracy (outside only when outside even allowing for the fix's error)."""
    margin = acc if acc == acc else 0.0
    d = distance_m(f_lat, f_lon, la, lo) - f_r
    score = d - margin
    for r in range(sc.shape[0]):
        sc[r] = score
    return d


@helper
def fix_idle(s, f_lat, f_lon, f_r, la, lo, acc, r_op, on, since, active):  # type: ignore[no-untyped-def]
    """True when a GPS fix certainly changes no rule (the usual case: inside the fence, no
    alarm, no hold running), judged on `distance_bound_m`: the score ``d − f_r − margin``
    is monotonic in ``d``, so the bound's score is at least the exact one. The kernels then
    skip the exact distance and the rule step, which would change nothing."""
    margin = acc if acc == acc else 0.0
    hi = (distance_bound_m(f_lat, f_lon, la, lo) - f_r) - margin
    return rules_idle(s, hi, r_op, on, since, active)


@kernel
def presence_kernel(  # type: ignore[no-untyped-def]
    start, idx, slot, ts, lat, lon, gps_acc, quality, warn_ms, crit_ms,
    monitored, role, f_lat, f_lon, f_r, last_seen, off_lvl, outside, sc,
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, kind_codes,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    """This detector alone (the pipeline runs `detectors.fused.fused_kernel` instead)."""
    n = idx.shape[0]
    cap = ev_slot.shape[0]
    for k in range(start, n):
        i = idx[k]
        s = np.uint32(slot[i])
        q = quality[i]
        if not q & Q_FRESH:
            continue
        if ev_n[0] + 5 > cap:
            return k
        t = ts[i]
        if monitored[s]:
            off_lvl[s] = offline_seen(
                s, t, last_seen[s], off_lvl[s], warn_ms, crit_ms,
                ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
            )  # fmt: skip
        last_seen[s] = t
        if role[s] == 0 or not q & Q_GPS:
            continue
        if fix_idle(s, f_lat[s], f_lon[s], f_r[s], lat[i], lon[i], gps_acc[i], r_op, on, since,
                    active):  # fmt: skip
            outside[s] = distance_m(f_lat[s], f_lon[s], lat[i], lon[i]) - f_r[s]
            continue
        outside[s] = outside_score(sc, f_lat[s], f_lon[s], f_r[s], lat[i], lon[i], gps_acc[i])
        step_rules(
            s, t, sc, sc, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active,
            csince, lvl, kind_codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
        )  # fmt: skip
    return n


@kernel
def offline_tick(  # type: ignore[no-untyped-def]
    now, monitored, last_seen, off_lvl, warn_ms, crit_ms,
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
):  # fmt: skip
    for s in range(last_seen.shape[0]):
        if monitored[s]:
            off_lvl[s] = offline_crossings(
                s, now, last_seen[s], off_lvl[s], warn_ms, crit_ms,
                ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
            )  # fmt: skip


class PresenceDetector(Detector):
    """``device_offline``, ``geofence_exit`` and ``watcher_away`` for devices on permits."""

    name = "presence"
    fields: ClassVar[dict[str, StateField]] = {
        "last_seen": StateField(np.int64, -1),
        "off_lvl": StateField(np.int8, 0),
        "outside": StateField(np.float64, np.nan),
    }
    params: ClassVar[dict[str, StateField]] = {
        "monitored": StateField(np.bool_, False),
        "role": StateField(np.int8, ROLE_NONE),
        "f_lat": StateField(np.float64, np.nan),
        "f_lon": StateField(np.float64, np.nan),
        "f_r": StateField(np.float64, np.nan),
    }
    scores_ = ("outside", "last_seen")

    def make_rules(self, s: DetectorSettings) -> tuple[Rule, ...]:
        g, w = AlarmKind.GEOFENCE_EXIT, AlarmKind.WATCHER_AWAY
        return (
            Rule(g, Severity.WARNING, ">", ms(s.geofence_warning_s), 0, "outside"),
            Rule(g, Severity.CRITICAL, ">", ms(s.geofence_critical_s), 0, "outside"),
            Rule(w, Severity.WARNING, ">", ms(s.watcher_warning_s), 0, "outside"),
            Rule(w, Severity.CRITICAL, ">", ms(s.watcher_critical_s), 0, "outside"),
        )

    @property
    def kinds(self) -> tuple[AlarmKind, ...]:
        return (AlarmKind.DEVICE_OFFLINE, *self.rules.kinds)

    def set_role(self, slot: int, role: int, fence: tuple[float, float, float] | None) -> None:
        """Put a slot on a permit (worker or watcher) with the permit's circle, or take it off."""
        a = self.arrays
        a["monitored"][slot] = role != ROLE_NONE
        a["role"][slot] = role
        lat, lon, r = fence if fence else (np.nan, np.nan, np.nan)
        a["f_lat"][slot], a["f_lon"][slot], a["f_r"][slot] = lat, lon, r
        inf, h = np.inf, -self.settings.geofence_hysteresis_m
        worker = role == ROLE_WORKER and fence is not None
        watcher = role == ROLE_WATCHER and fence is not None
        on = [0.0 if worker else inf] * 2 + [0.0 if watcher else inf] * 2
        self.rules.set_limits(slot, on, [h] * 4)

    def fused_args(self) -> tuple[Any, ...]:
        s = self.settings
        st = self.a("monitored", "role", "f_lat", "f_lon", "f_r", "last_seen", "off_lvl", "outside")
        params = (ms(s.offline_warning_s), ms(s.offline_critical_s))
        return params, st, np.zeros(4), self.rules.args()

    def update(self, ctx: BatchContext) -> None:
        params, st, sc, rules = self.fused_args()

        def call(start: int) -> int:
            return presence_kernel(  # type: ignore[no-any-return]
                start, ctx.idx, ctx.slot, ctx.ts,
                ctx.lat, ctx.lon, ctx.gps_acc, ctx.quality, *params, *st, sc, *rules,
                *self.ev(ctx),
            )  # fmt: skip

        drive(len(ctx.idx), ctx.events, call)

    def tick(self, ctx: BatchContext) -> None:
        """Raise device_offline for monitored devices silent up to ``ctx.now_ms``."""
        s = self.settings
        while ctx.events.capacity - int(ctx.events.n[0]) < 2 * self.capacity + 2:
            ctx.events.grow()
        offline_tick(
            ctx.now_ms, *self.a("monitored", "last_seen", "off_lvl"),
            ms(s.offline_warning_s), ms(s.offline_critical_s), *self.ev(ctx),
        )  # fmt: skip
