"""The sample-level detectors in one pass: each device's samples once, its state in registers.

`fused_kernel` runs signal quality, the 1-minute aggregation, SpO2, skin temperature,
man-down, recovery and presence over a batch, calling the same per-sample steps
(``*_step`` helpers) as each detector's own kernel, in the same order per sample. It walks
``idx`` in runs of samples of one slot (`group_by_slot` makes each slot one run): at the
start of a run it loads the slot's state into local scalars, at the end stores it, so the
per-sample work touches only the input columns, the rule state and the outputs. Results are
identical for any order of ``idx`` that keeps each slot's samples in batch order (a run of
one sample is the per-detector kernels' load-step-store).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from detectors._jit import helper, kernel
from detectors.aggregate import aggregate_step
from detectors.base import Q_GPS, Q_HR, Q_MOTION, Q_SKIN, Q_SPO2, BatchContext, Detector
from detectors.man_down import man_down_scores, man_down_step
from detectors.policy import rules_quiet, step_rules
from detectors.presence import distance_m, fix_idle, offline_seen, outside_score
from detectors.quality import quality_load, quality_step, quality_store
from detectors.recovery import recovery_step
from detectors.skin_temp import skin_step
from detectors.spo2 import spo2_step

#: Most level changes one sample can cause: sensor_fault, spo2_low, skin_temp_high, sos,
#: fall, no_motion, hr_recovery_poor, device_offline ×3 (raise, escalate, clear),
#: geofence_exit, watcher_away.
MAX_EVENTS_PER_SAMPLE: Final = 12

#: The detectors `fused_kernel` runs, in its argument order (their ``name``).
FUSED: Final = ("quality", "aggregate", "spo2", "skin_temp", "man_down", "recovery", "presence")


@helper
def rules(s, t, sc, vals, table, ev):  # type: ignore[no-untyped-def]
    """`step_rules` with a detector's rule arrays and the event buffer as tuples."""
    r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince, lvl, codes = table
    ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n = ev
    step_rules(
        s, t, sc, vals, r_kind, r_sev, r_op, r_hold, r_clear, on, off, since, active, csince,
        lvl, codes, ev_slot, ev_kind, ev_level, ev_ts, ev_value, ev_n,
    )  # fmt: skip


@kernel
def fused_kernel(start, idx, slot, cols, quality, ev, mb, qd, ad, sd, kd, md, rd, pd):  # type: ignore[no-untyped-def]
    """Advance the seven sample-level detectors over ``idx[start:]``; returns where it
    stopped (``len(idx)`` when done, earlier when an output buffer needs to grow).

    ``cols``: ts, hr, spo2, skin, lat, lon, gps_acc, motion, flags. ``ev``, ``mb``: the
    event and minute buffers. ``qd`` … ``pd``: per detector its parameters, state arrays,
    score scratch and rule table (`DetectorPipeline` builds them with each detector's
    ``fused_args``).
    """
    ts, hr, spo2, skin, lat, lon, gps_acc, motion, flags = cols
    ev_n = ev[5]
    ev_cap = ev[0].shape[0]
    m_slot, m_end, m_hr, m_count, m_n = mb
    m_cap = m_slot.shape[0]
    (q_lo, q_hi, q_roc, q_flat, q_gap, q_tau, q_gps), q_arr, q_sc, q_rules = qd
    q_last_ts, q_last_v, q_last_t, q_flat_t, q_frac, q_fault = q_arr
    a_min, (a_cur, a_total, a_count) = ad
    (o_win, o_min), (o_ring_v, o_ring_t, o_head, o_wn, o_wsum, o_avg), o_sc, o_rules = sd
    (k_tau, k_warm, k_gap), (k_first, k_last, k_level, k_rate), k_sc, k_vals, k_rules = kd
    (d_still_g, d_gap, d_fall_still, d_sos_latch, d_fall_latch), d_arr, d_sc, d_rules = md
    d_sos, d_fall_start, d_fall_last, d_still_since, d_motion_t, d_still = d_arr
    (r_rest, r_active_min, r_after, r_tau, r_gap), r_arr, r_sc, r_rules = rd
    r_hs, r_hs_t, r_ms, r_ms_t, r_active_since, r_rest_start, r_rec = r_arr
    (p_warn, p_crit), p_arr, p_sc, p_rules = pd
    p_monitored, p_role, p_lat, p_lon, p_r, p_last_seen, p_off_lvl, p_outside = p_arr
    p_op, p_on, p_since, p_active = p_rules[2], p_rules[5], p_rules[7], p_rules[8]
    d_op, d_on, d_since, d_active = d_rules[2], d_rules[5], d_rules[7], d_rules[8]
    # EWMA weight caches (scalars, see `ewma_weight`): quality, skin, recovery HR and motion
    qw, qw_step, kw, kw_step = 0.0, -1, 0.0, -1
    rwh, rwh_step, rwm, rwm_step = 0.0, -1, 0.0, -1
    n = idx.shape[0]
    k = start
    while k < n:
        s = np.uint32(slot[idx[k]])
        # ---- load the slot's state
        last_ts = q_last_ts[s]
        qst = quality_load(s, q_last_v, q_last_t, q_flat_t, q_frac, q_fault)
        cur, total, count = a_cur[s], a_total[s], a_count[s]
        head, wn, wsum, avg = o_head[s], o_wn[s], o_wsum[s], o_avg[s]
        first_t, skin_t, level, rate = k_first[s], k_last[s], k_level[s], k_rate[s]
        sos_last, fall_start, fall_last = d_sos[s], d_fall_start[s], d_fall_last[s]
        still_since, motion_t, still = d_still_since[s], d_motion_t[s], d_still[s]
        rst = (r_hs[s], r_hs_t[s], r_ms[s], r_ms_t[s], r_active_since[s], r_rest_start[s],
               r_rec[s])  # fmt: skip
        monitored, role = p_monitored[s], p_role[s]
        f_lat, f_lon, f_r = p_lat[s], p_lon[s], p_r[s]
        last_seen, off_lvl, outside = p_last_seen[s], p_off_lvl[s], p_outside[s]
        idle_fix = -1  # the run's last GPS fix whose exact distance was skipped (fix_idle)
        d_quiet = False  # man-down's rules found quiet (`rules_quiet`) at the scores d_last
        d_last = (0.0, 0.0, 0.0)
        stop = False
        while k < n:
            i = idx[k]
            if np.uint32(slot[i]) != s:
                break
            if ev_n[0] + MAX_EVENTS_PER_SAMPLE > ev_cap or m_n[0] + 1 > m_cap:
                stop = True
                break
            k += 1
            t = ts[i]
            if last_ts >= 0 and t <= last_ts:
                quality[i] = 0  # late or duplicate: stored, but not fed to the detectors
                continue
            last_ts = t
            # ---- signal quality
            q, qst, present, qw, qw_step = quality_step(
                t, np.float64(hr[i]), np.float64(spo2[i]), np.float64(skin[i]), lat[i], lon[i],
                gps_acc[i], motion[i], q_lo, q_hi, q_roc, q_flat, q_gap, q_tau, q_gps, qst,
                qw, qw_step,
            )  # fmt: skip
            quality[i] = q
            if present:
                q_sc[0] = qst[12]
                rules(s, t, q_sc, q_sc, q_rules, ev)
            # ---- 1-minute aggregation
            cur, total, count = aggregate_step(
                s, t, hr[i], q & Q_HR, a_min, cur, total, count, m_slot, m_end, m_hr, m_count,
                m_n,
            )  # fmt: skip
            # ---- SpO2
            if q & Q_SPO2:
                head, wn, wsum, avg = spo2_step(
                    s, t, spo2[i], o_win, o_min, o_ring_v, o_ring_t, head, wn, wsum
                )
                o_sc[0] = avg
                o_sc[1] = avg
                rules(s, t, o_sc, o_sc, o_rules, ev)
            # ---- skin temperature
            if q & Q_SKIN:
                first_t, skin_t, level, rate, kw, kw_step = skin_step(
                    t, np.float64(skin[i]), k_tau, k_gap, first_t, skin_t, level, rate, kw,
                    kw_step,
                )  # fmt: skip
                k_sc[0] = level
                k_vals[0] = level
                k_sc[1] = rate if t - first_t >= k_warm else np.nan
                k_vals[1] = level
                rules(s, t, k_sc, k_vals, k_rules, ev)
            # ---- man-down
            sos_last, fall_start, fall_last, still_since, motion_t, still, sos, fall = (
                man_down_step(
                    t, q & Q_MOTION, motion[i], flags[i], d_still_g, d_gap, d_fall_still,
                    d_sos_latch, d_fall_latch, sos_last, fall_start, fall_last, still_since,
                    motion_t,
                )
            )  # fmt: skip
            # six rules, usually all quiet at the same scores (0, 0, 0: moving, no flags)
            if not (d_quiet and sos == d_last[0] and fall == d_last[1] and still == d_last[2]):
                man_down_scores(d_sc, still, sos, fall)
                d_quiet = rules_quiet(s, d_sc, d_op, d_on, d_since, d_active)
                if not d_quiet:
                    rules(s, t, d_sc, d_sc, d_rules, ev)
                d_last = (sos, fall, still)
            # ---- recovery
            rst, rwh, rwh_step, rwm, rwm_step = recovery_step(
                t, q, hr[i], motion[i], r_rest, r_active_min, r_after, r_tau, r_gap, rst,
                rwh, rwh_step, rwm, rwm_step,
            )  # fmt: skip
            r_sc[0] = rst[6]
            rules(s, t, r_sc, r_sc, r_rules, ev)
            # ---- presence
            if monitored:
                off_lvl = offline_seen(
                    s, t, last_seen, off_lvl, p_warn, p_crit, ev[0], ev[1], ev[2], ev[3], ev[4],
                    ev_n,
                )  # fmt: skip
            last_seen = t
            if role != 0 and q & Q_GPS:
                if fix_idle(s, f_lat, f_lon, f_r, lat[i], lon[i], gps_acc[i], p_op, p_on,
                            p_since, p_active):  # fmt: skip
                    idle_fix = i
                else:
                    idle_fix = -1
                    outside = outside_score(p_sc, f_lat, f_lon, f_r, lat[i], lon[i], gps_acc[i])
                    rules(s, t, p_sc, p_sc, p_rules, ev)
        # ---- store the slot's state
        if idle_fix >= 0:
            outside = distance_m(f_lat, f_lon, lat[idle_fix], lon[idle_fix]) - f_r
        q_last_ts[s] = last_ts
        quality_store(s, qst, q_last_v, q_last_t, q_flat_t, q_frac, q_fault)
        a_cur[s], a_total[s], a_count[s] = cur, total, count
        o_head[s], o_wn[s], o_wsum[s], o_avg[s] = head, wn, wsum, avg
        k_first[s], k_last[s], k_level[s], k_rate[s] = first_t, skin_t, level, rate
        d_sos[s], d_fall_start[s], d_fall_last[s] = sos_last, fall_start, fall_last
        d_still_since[s], d_motion_t[s], d_still[s] = still_since, motion_t, still
        r_hs[s], r_hs_t[s], r_ms[s], r_ms_t[s] = rst[0], rst[1], rst[2], rst[3]
        r_active_since[s], r_rest_start[s], r_rec[s] = rst[4], rst[5], rst[6]
        p_last_seen[s], p_off_lvl[s], p_outside[s] = last_seen, off_lvl, outside
        if stop:
            return k
    return n


@kernel
def group_by_slot(dev, remap, n_parts, counts, slot, idx, starts):  # type: ignore[no-untyped-def]
    """Map each sample's batch device ``dev`` to its slot (``slot[i] = remap[dev[i]]``),
    sort the samples by slot, each slot's samples in batch order (a counting sort), and
    cut the result into ``n_parts`` ranges of whole slots holding about equal numbers of
    samples: part p is ``idx[starts[p]:starts[p + 1]]`` (a part may be empty).

    ``counts`` is scratch with one entry per slot plus one, zero on entry; ``slot`` and
    ``idx`` have one entry per sample, ``starts`` ``n_parts + 1``.
    """
    n = dev.shape[0]
    n_slots = counts.shape[0] - 1
    for i in range(n):
        s = remap[np.uint32(dev[i])]
        slot[i] = s
        counts[np.uint32(s) + 1] += 1
    target = (n + n_parts - 1) // n_parts
    p = 1
    starts[0] = 0
    for s in range(n_slots):
        counts[s + 1] += counts[s]  # counts[s]: where slot s starts
        if p < n_parts and counts[s + 1] >= target * p:
            starts[p] = counts[s + 1]
            p += 1
    while p <= n_parts:
        starts[p] = n
        p += 1
    for i in range(n):
        s = np.uint32(slot[i])
        idx[counts[s]] = i
        counts[s] += 1


def advance_samples(ctx: BatchContext, detectors: dict[str, Detector]) -> None:
    """Run `fused_kernel` over ``ctx``'s samples with the pipeline's sample-level detectors
    (by name), growing the output buffers as it needs."""
    args = tuple(detectors[name].fused_args() for name in FUSED)
    cols = (ctx.ts, ctx.hr, ctx.spo2, ctx.skin, ctx.lat, ctx.lon, ctx.gps_acc, ctx.motion,
            ctx.flags)  # fmt: skip
    e, mb = ctx.events, ctx.minutes
    n = ctx.n
    k = 0
    while True:
        ev = (e.slot, e.kind, e.level, e.ts, e.value, e.n)
        m = (mb.slot, mb.end_ts, mb.hr, mb.count, mb.n)
        k = int(fused_kernel(k, ctx.idx, ctx.slot, cols, ctx.quality, ev, m, *args))
        if k >= n:
            return
        if e.capacity - int(e.n[0]) < MAX_EVENTS_PER_SAMPLE:
            e.grow()
        if mb.capacity - int(mb.n[0]) < 1:
            mb.grow()
