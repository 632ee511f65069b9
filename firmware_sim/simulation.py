"""A scenario as a deterministic, seeded simulation: ``step()`` advances every worker and
device by one sample period and returns what the devices measured, the command acks and
status changes of that step, and which links are down.

No I/O and no wall clock: the same scenario and seed give the same samples, byte for byte.
The player (``player.py``) and the exporter (``export.py``) put the samples on the wire.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson

from firmware_sim import incidents
from firmware_sim.commands import Ack, AckStatus, Action, Command, parse_command
from firmware_sim.geo import LocalFrame
from firmware_sim.incidents import IncidentKind, TruthRecord
from firmware_sim.physiology import (
    ACT_HURRYING,
    ACT_WALKING,
    CLOTHING_CAV,
    WORKLOAD_INDEX,
    Bodies,
    Drive,
    Profiles,
)
from firmware_sim.scenario import Clothing, Scenario, Workload
from firmware_sim.world import Area, Movement, resolve_areas
from ingest.wire import FLAG_FALL, FLAG_SOS, RECORD_DTYPE, SampleBatch

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
Role = Literal["crew", "watcher", "other", "background"]
LinkKind = Literal["device", "gateway", "shared"]

BATTERY_DRAIN_PER_S = 5.0 / 3600  # %/s: a 1 Hz wearable with cellular/LoRa uplink, ~20 h
_MEAS_FIELDS = ("hr", "skin_temp", "spo2", "gps", "motion")
_ACTIONS = frozenset(a.value for a in Action)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A resolved worker: profile, device, work area (index, -1 = none) and role."""

    worker_id: str
    device_id: str
    age: int
    acclimatized: bool
    resting_hr: float
    fitness: float
    clothing: Clothing
    area: int
    role: Role


@dataclass(frozen=True, slots=True)
class Link:
    """One network connection: a device's own, a gateway's, or the shared background one."""

    id: str
    kind: LinkKind
    devices: tuple[int, ...]
    max_frame_samples: int = 500


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A device died (battery) or came back."""

    device_id: str
    state: Literal["dead", "alive"]


@dataclass(frozen=True, slots=True)
class Tick:
    """One step's output. ``samples`` uses the simulation's full device table."""

    index: int
    t_ms: int
    samples: SampleBatch
    acks: tuple[Ack, ...] = ()
    status: tuple[StatusChange, ...] = ()
    links_down: frozenset[str] = frozenset()


@dataclass
class _CommandState:
    status: AckStatus
    detail: str | None = None


@dataclass
class _Minutes:
    """Per-device-minute means of the true core temperature."""

    minute: int = 0
    total: F64 = field(default_factory=lambda: np.zeros(0))
    count: int = 0
    starts: list[int] = field(default_factory=list)
    means: list[F64] = field(default_factory=list)


class Simulation:
    """A running scenario.

    Args:
        scenario: the validated scenario.
        start_ms: true time of t=0 (default: the scenario's ``start``).
        seed: overrides the scenario's seed.
        extra_devices: overrides the scenario's number of background devices.
        record_truth: keep ground truth (off for big load fleets).
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        start_ms: int | None = None,
        seed: int | None = None,
        extra_devices: int | None = None,
        record_truth: bool = True,
    ) -> None:
        self.scenario = scenario
        self.dt = 1.0 / scenario.rate_hz
        self.start_ms = scenario.start_ms if start_ms is None else start_ms
        self.seed = scenario.seed if seed is None else seed
        self.record_truth = record_truth
        streams = np.random.SeedSequence(self.seed).spawn(6)
        profile_rng, phys, move, meas, background, net = (np.random.default_rng(s) for s in streams)
        self._phys_rng, self._move_rng, self._meas_rng, self._bg_rng = phys, move, meas, background
        self.net_rng = net
        site = scenario.site
        self.frame = LocalFrame(site.origin.lat, site.origin.lon)
        self.areas: list[Area] = resolve_areas(scenario, self.frame)
        self.area_index = {a.id: k for k, a in enumerate(self.areas)}
        mx, my = self.frame.to_xy(site.muster.lat, site.muster.lon) if site.muster else (0.0, 0.0)
        self.muster = (float(mx), float(my))
        n_bg = scenario.background.devices if extra_devices is None else extra_devices
        self.workers = self._resolve_workers(n_bg)
        self.devices = tuple(w.device_id for w in self.workers)
        self.device_index = {d: i for i, d in enumerate(self.devices)}
        self.worker_index = {w.worker_id: i for i, w in enumerate(self.workers)}
        self.background = np.array([w.role == "background" for w in self.workers], dtype=bool)
        self.area_of = np.array([w.area for w in self.workers], dtype=np.intp)
        self.crew = np.array([w.role == "crew" for w in self.workers], dtype=bool)
        self.links = self._resolve_links()
        n = len(self.workers)
        profiles = self._profiles(profile_rng)
        self.bodies = Bodies(profiles, phys)
        self.move = Movement(*self._home_spots(profile_rng), move)
        self._init_devices(profile_rng)
        self._init_activity()
        self._incidents = [incidents.start(spec, self) for spec in scenario.incidents]
        self._truth: list[TruthRecord] = []
        self._open: dict[tuple[Any, int], tuple[int, str, int]] = {}
        self._minutes = _Minutes(total=np.zeros(n))
        self._commands: dict[tuple[int, str], _CommandState] = {}
        self._pending: list[tuple[int, Command]] = []
        self._leaving: dict[int, tuple[str, int]] = {}
        self._acks: list[Ack] = []
        self._status: list[StatusChange] = []
        self.messages: list[tuple[int, str, str]] = []
        self._schedule_next = 0
        self._scripted_next = 0
        self.index = 0
        self._t = -math.ceil(scenario.warmup / self.dt - 1e-9) * self.dt
        self._apply_schedule(0.0)
        while self._t < -1e-9:
            self._advance(self.dt, measure=False)

    # ------------------------------------------------------------------ set-up

    def _resolve_workers(self, n_background: int) -> list[WorkerInfo]:
        s = self.scenario
        watchers = {p.watcher for p in s.permits if p.watcher}
        crew = {w for p in s.permits for w in p.workers}
        out = []
        for w in s.workers:
            area_id = s.worker_area(w.id)
            role: Role = "watcher" if w.id in watchers else "crew" if w.id in crew else "other"
            out.append(
                WorkerInfo(
                    worker_id=w.id,
                    device_id=w.device,
                    age=w.age,
                    acclimatized=w.acclimatized,
                    resting_hr=w.resting_hr,
                    fitness=w.fitness,
                    clothing=w.clothing,
                    area=self.area_index[area_id] if area_id else -1,
                    role=role,
                )
            )
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 7919]))
        width = max(4, len(str(n_background)))
        prefix = s.background.prefix
        for k in range(1, n_background + 1):
            out.append(
                WorkerInfo(
                    worker_id=f"{prefix}w-{k:0{width}d}",
                    device_id=f"{prefix}-{k:0{width}d}",
                    age=int(rng.integers(21, 59)),
                    acclimatized=bool(rng.random() < 0.85),
                    resting_hr=float(np.clip(np.round(rng.normal(68, 7)), 50, 90)),
                    fitness=float(np.round(rng.uniform(0.2, 0.9), 2)),
                    clothing=Clothing.COVERALLS,
                    area=-1,
                    role="background",
                )
            )
        return out

    def _resolve_links(self) -> list[Link]:
        s = self.scenario
        behind = {d: g for g in s.gateways for d in g.devices}
        links = [
            Link(
                g.id, "gateway", tuple(self.device_index[d] for d in g.devices), g.max_frame_samples
            )
            for g in s.gateways
        ]
        for i, w in enumerate(self.workers):
            if w.role != "background" and w.device_id not in behind:
                links.append(Link(w.device_id, "device", (i,)))
        bg = tuple(np.flatnonzero(self.background).tolist())
        if bg:
            links.append(Link(f"{s.background.prefix}-fleet", "shared", bg))
        return links

    def _profiles(self, rng: np.random.Generator) -> Profiles:
        ws = self.workers
        return Profiles(
            age=np.array([w.age for w in ws], dtype=float),
            acclimatized=np.array([w.acclimatized for w in ws], dtype=bool),
            resting_hr=np.array([w.resting_hr for w in ws], dtype=float),
            fitness=np.array([w.fitness for w in ws], dtype=float),
            cav=np.array([CLOTHING_CAV[w.clothing] for w in ws], dtype=float),
        )

    def _home_spots(self, rng: np.random.Generator) -> tuple[F64, F64]:
        n = len(self.workers)
        x, y = np.zeros(n), np.zeros(n)
        roam = self.scenario.site.roam_radius_m
        for i, w in enumerate(self.workers):
            if w.area < 0:
                r, a = roam * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
                x[i], y[i] = r * math.cos(a), r * math.sin(a)
                continue
            area = self.areas[w.area]
            if w.role == "watcher" and area.entry is not None:
                x[i], y[i] = area.entry
                continue
            x[i], y[i] = self._spot_in(area, rng, 0.85 if w.role == "watcher" else 0.55)
        return x, y

    @staticmethod
    def _spot_in(area: Area, rng: np.random.Generator, reach: float) -> tuple[float, float]:
        cx, cy = area.shape.centre
        size = area.shape.size()
        for _ in range(100):
            r, a = reach * size * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
            px, py = cx + r * math.cos(a), cy + r * math.sin(a)
            if area.shape.inside(px, py):
                return px, py
        return cx, cy

    def _init_devices(self, rng: np.random.Generator) -> None:
        n = len(self.workers)
        specs = {w.id: w for w in self.scenario.workers}
        self.alive = np.ones(n, dtype=bool)
        self.worn = np.ones(n, dtype=bool)
        self.seq = np.zeros(n, dtype=np.uint32)
        self.battery = rng.uniform(55.0, 100.0, n)
        self.skew_ms = np.zeros(n)
        self.drift_ppm = np.zeros(n)
        self.duplicate_p = np.zeros(n)
        self.buffer_samples = np.full(n, 86_400, dtype=np.int64)
        for i, w in enumerate(self.workers):
            spec = specs.get(w.worker_id)
            if spec is None:
                continue
            if spec.battery_pct is not None:
                self.battery[i] = spec.battery_pct
            self.skew_ms[i] = spec.clock_skew_s * 1000
            self.drift_ppm[i] = spec.clock_drift_ppm
            self.duplicate_p[i] = spec.duplicate_p
            self.buffer_samples[i] = spec.buffer_samples
        self.gps_acc_base = rng.uniform(3.0, 6.0, n)
        self.gps_acc = self.gps_acc_base.copy()
        self.gps_err_x = rng.normal(0, 1.5, n)
        self.gps_err_y = rng.normal(0, 1.5, n)
        self.gps_offset_x, self.gps_offset_y = np.zeros(n), np.zeros(n)
        self.gps_degraded = np.zeros(n, dtype=bool)
        self.dev_x, self.dev_y = self.move.x.copy(), self.move.y.copy()
        self.dev_skin = self.bodies.skin.copy()
        self.frozen_hr, self.frozen_spo2 = np.zeros(n), np.zeros(n)
        self.last_hr = np.round(self.bodies.hr_true)
        self.last_spo2 = np.round(self.bodies.spo2)
        self.fallen = np.zeros(n, dtype=bool)
        self.impact = np.zeros(n, dtype=bool)
        self.sos = np.zeros(n, dtype=bool)
        self.missing = {name: np.zeros(n, dtype=bool) for name in _MEAS_FIELDS}

    def _init_activity(self) -> None:
        n = len(self.workers)
        default = {"crew": Workload.MODERATE, "watcher": Workload.LIGHT}
        specs = {w.id: w for w in self.scenario.workers}
        self.workload = np.zeros(n, dtype=np.intp)
        for i, w in enumerate(self.workers):
            spec = specs.get(w.worker_id)
            chosen = spec.workload if spec is not None and spec.workload else None
            self.workload[i] = WORKLOAD_INDEX[chosen or default.get(w.role, Workload.LIGHT)]
        self.rest_until = np.full(n, -math.inf)
        self.at_muster = np.zeros(n, dtype=bool)

    # ------------------------------------------------------------------ public

    @property
    def t(self) -> float:
        """Seconds since t=0 of the next step."""
        return self._t

    @property
    def now_ms(self) -> int:
        """True time (ms) of the next step."""
        return self.start_ms + round(self._t * 1000)

    def device_ms(self, i: int) -> int:
        """What device ``i``'s clock says now (skew and drift applied)."""
        drift = self.drift_ppm[i] * 1e-6 * self._t * 1000
        return self.now_ms + round(float(self.skew_ms[i] + drift))

    def step(self, dt_s: float | None = None) -> Tick:
        """Advance by one sample period (or ``dt_s``) and return what happened."""
        dt = self.dt if dt_s is None else dt_s
        index, t_ms = self.index, self.now_ms
        samples = self._advance(dt, measure=True)
        assert samples is not None
        tick = Tick(
            index=index,
            t_ms=t_ms,
            samples=samples,
            acks=tuple(self._acks),
            status=tuple(self._status),
            links_down=self._links_down(self._t - dt),
        )
        self._acks, self._status = [], []
        self.index += 1
        return tick

    def command(self, device_id: str, payload: bytes | Command) -> Ack | None:
        """A command arrives at a device: returns the immediate ack (``delivered`` or
        ``failed``), or None when there is nothing to answer (unknown or dead device, or a
        payload without a command id). The command takes effect at the next step."""
        i = self.device_index.get(device_id)
        if i is None or not self.alive[i]:
            return None
        cmd = payload if isinstance(payload, Command) else parse_command(payload)
        if isinstance(cmd, str):
            cmd_id = _cmd_id_of(payload)
            log.info("device %s got an invalid command: %s", device_id, cmd)
            return None if cmd_id is None else self._ack(i, cmd_id, AckStatus.FAILED, cmd)
        seen = self._commands.get((i, cmd.cmd_id))
        if seen is not None:  # a redelivery (QoS 1): answer again, do not act twice
            return self._ack(i, cmd.cmd_id, seen.status, seen.detail, record=False)
        if cmd.expires_ms is not None and self.now_ms > cmd.expires_ms:
            return self._ack(i, cmd.cmd_id, AckStatus.FAILED, "expired")
        if cmd.action not in _ACTIONS:
            return self._ack(i, cmd.cmd_id, AckStatus.FAILED, f"unknown action {cmd.action!r}")
        self._pending.append((i, cmd))
        return self._ack(i, cmd.cmd_id, AckStatus.DELIVERED)

    def inside_area(self, area: int, who: list[int]) -> npt.NDArray[np.bool_]:
        """Whether each of ``who`` is (truly) inside work area ``area``."""
        idx = np.asarray(who, dtype=np.intp)
        return self.areas[area].shape.contains(self.move.x[idx], self.move.y[idx])

    def leaving_or_evacuated(self, i: int) -> bool:
        return i in self._leaving or bool(self.at_muster[i])

    # ------------------------------------------------------------------ the step

    def _advance(self, dt: float, *, measure: bool) -> SampleBatch | None:
        t = self._t
        if t >= 0:
            self._apply_schedule(t)
            self._run_scripted(t)
        self._apply_pending(t)
        drive = Drive.neutral(len(self.workers))
        for name in _MEAS_FIELDS:
            self.missing[name][:] = False
        self.sos[:] = False
        self.impact[:] = False
        if t >= 0:
            for run in self._incidents:
                run.drive(self, t, drive)
        self._background_step(dt)
        self.bodies.step(
            dt, activity=self._activity(t), wbgt=self._wbgt(), drive=drive, rng=self._phys_rng
        )
        self.move.step(dt, self._move_rng)
        self._check_leaving()
        self.battery = np.maximum(self.battery - BATTERY_DRAIN_PER_S * dt * self.alive, 0.0)
        for i in np.flatnonzero(self.alive & (self.battery <= 0.0)).tolist():
            self.kill(i)
        samples = self._measure(dt) if measure else None
        if t >= 0 and self.record_truth:
            for run in self._incidents:
                run.observe(self, t)
            self._observe_outages(t)
            self._record_core_temp(t)
        self._t = t + dt
        return samples

    def _apply_schedule(self, t: float) -> None:
        entries = self.scenario.schedule
        while self._schedule_next < len(entries) and entries[self._schedule_next].at <= t:
            e = entries[self._schedule_next]
            who = {self.worker_index[w] for w in e.workers}
            for p in self.scenario.permits:
                if p.id in e.permits:
                    who |= {self.worker_index[w] for w in p.workers}
            for i in who:
                self.workload[i] = WORKLOAD_INDEX[e.workload]
            self._schedule_next += 1

    def _run_scripted(self, t: float) -> None:
        cmds = self.scenario.commands
        while self._scripted_next < len(cmds) and cmds[self._scripted_next].at <= t:
            c = cmds[self._scripted_next]
            cmd = Command(
                cmd_id=f"{self.scenario.name}-{self._scripted_next + 1}",
                action=c.action,
                params=c.params,
                issued_ms=self.now_ms,
            )
            self.command(self.workers[self.worker_index[c.worker]].device_id, cmd)
            self._scripted_next += 1

    def _activity(self, t: float) -> npt.NDArray[np.intp]:
        act = self.workload.copy()
        resting = (self.rest_until > t) | self.at_muster | self.fallen
        act[resting] = WORKLOAD_INDEX[Workload.REST]
        walking = self.move.moving & ~self.move.frozen
        act[walking & ~self.move.hurry] = ACT_WALKING
        act[walking & self.move.hurry] = ACT_HURRYING
        return act

    def _wbgt(self) -> F64:
        wbgt = np.full(len(self.workers), self.scenario.site.wbgt_c)
        for k, area in enumerate(self.areas):
            if area.spec.wbgt_offset_c:
                who = np.flatnonzero(self.area_of == k)
                if len(who):
                    inside = self.inside_area(k, who.tolist())
                    wbgt[who[inside]] += area.spec.wbgt_offset_c
        return wbgt

    def _background_step(self, dt: float) -> None:
        """Background workers change tasks now and then and walk rounds across the site."""
        bg = self.background
        if not bg.any():
            return
        rng, n = self._bg_rng, len(self.workers)
        switch = bg & (rng.random(n) < dt / 900.0)
        choice = rng.choice(4, size=n, p=[0.15, 0.45, 0.35, 0.05])
        self.workload = np.where(switch, choice, self.workload)
        roam = self.scenario.site.roam_radius_m
        r, a = roam * np.sqrt(rng.random(n)), rng.uniform(0, 2 * math.pi, n)
        go = bg & ~self.move.moving & ~self.at_muster & (rng.random(n) < dt / 300.0)
        for i in np.flatnonzero(go).tolist():
            if i not in self._leaving:
                self.move.walk(i, [(float(r[i] * math.cos(a[i])), float(r[i] * math.sin(a[i])))])

    # ------------------------------------------------------------------ devices

    def take_off(self, i: int) -> None:
        """The wearer takes the device off: it stays where it is, its readings freeze."""
        self.worn[i] = False
        self.dev_x[i], self.dev_y[i] = self.move.x[i], self.move.y[i]
        self.frozen_hr[i], self.frozen_spo2[i] = self.last_hr[i], self.last_spo2[i]

    def put_on(self, i: int) -> None:
        self.worn[i] = True

    def kill(self, i: int) -> None:
        if self.alive[i]:
            self.alive[i] = False
            self._status.append(StatusChange(self.devices[i], "dead"))

    def revive(self, i: int) -> None:
        if not self.alive[i]:
            self.alive[i] = True
            self._status.append(StatusChange(self.devices[i], "alive"))

    def _measure(self, dt: float) -> SampleBatch:
        rng, n, b = self._meas_rng, len(self.workers), self.bodies
        z_hr, z_spo2, z_gx, z_gy, z_acc, z_still = (rng.standard_normal(n) for _ in range(6))
        worn = self.worn
        hr = np.where(worn, np.round(b.hr_true + z_hr), self.frozen_hr)
        spo2 = np.where(worn, np.round(np.clip(b.spo2 + 0.3 * z_spo2, 50, 100)), self.frozen_spo2)
        self.last_hr = np.where(worn, hr, self.last_hr)
        self.last_spo2 = np.where(worn, spo2, self.last_spo2)
        ambient = self.scenario.site.ambient_c
        cool = 1 - math.exp(-dt / 180.0)
        self.dev_skin = np.where(
            worn, b.skin_true, self.dev_skin + (ambient - self.dev_skin) * cool
        )
        # A body lying still reads under the detectors' 0.01 g still threshold (an unbounded
        # tail crossed it about one second in twenty, restarting the fall timer).
        still = 0.004 + 0.003 * np.minimum(np.abs(z_still), 1.5)
        motion = np.where(self.fallen, still, b.motion)
        motion = np.where(self.impact, 3.5 + np.abs(z_still), motion)
        motion = np.where(worn, motion, 0.0)
        lat, lon, acc = self._gps(dt, z_gx, z_gy, z_acc)
        flags = np.where(self.sos, FLAG_SOS, 0) | np.where(self.impact & worn, FLAG_FALL, 0)
        live = np.flatnonzero(self.alive)
        self.seq[live] += 1
        rec = np.empty(len(live), dtype=RECORD_DTYPE)
        rec["dev"] = live
        rec["flags"] = flags[live]
        rec["seq"] = self.seq[live]
        drift = self.drift_ppm[live] * 1e-6 * self._t * 1000
        rec["ts_ms"] = self.now_ms + np.round(self.skew_ms[live] + drift).astype(np.int64)
        miss = self.missing
        rec["hr"] = np.where(miss["hr"], np.nan, hr)[live]
        rec["skin_temp"] = np.where(miss["skin_temp"], np.nan, np.round(self.dev_skin, 2))[live]
        rec["spo2"] = np.where(miss["spo2"], np.nan, spo2)[live]
        rec["lat"] = np.where(miss["gps"], np.nan, lat)[live]
        rec["lon"] = np.where(miss["gps"], np.nan, lon)[live]
        rec["gps_acc"] = np.where(miss["gps"], np.nan, acc)[live]
        rec["motion"] = np.where(miss["motion"], np.nan, np.round(motion, 3))[live]
        rec["battery"] = np.round(self.battery[live])
        return SampleBatch.from_records(self.devices, rec)

    def _gps(self, dt: float, zx: F64, zy: F64, za: F64) -> tuple[F64, F64, F64]:
        """Reported fixes: AR(1) position error scaled by the accuracy; poorer inside areas
        whose GPS is poor (steel vessels), none where there is no fix."""
        x = np.where(self.worn, self.move.x, self.dev_x)
        y = np.where(self.worn, self.move.y, self.dev_y)
        quality = self._gps_quality(x, y)
        base = np.where(quality == 1, self.gps_acc_base * 4.0, self.gps_acc_base)
        base = np.where(self.gps_degraded, base * 8.0, base)
        phi_acc = math.exp(-dt / 20.0)
        self.gps_acc = base + phi_acc * (self.gps_acc - base) + 0.3 * math.sqrt(dt) * za
        self.gps_acc = np.maximum(self.gps_acc, 1.0)
        phi = math.exp(-dt / 30.0)
        k = math.sqrt(1 - phi * phi)
        self.gps_err_x = phi * self.gps_err_x + k * zx
        self.gps_err_y = phi * self.gps_err_y + k * zy
        scale = self.gps_acc / 2.0
        lat, lon = self.frame.to_latlon(
            x + self.gps_offset_x + scale * self.gps_err_x,
            y + self.gps_offset_y + scale * self.gps_err_y,
        )
        none = quality == 2
        return (
            np.where(none, np.nan, np.round(lat, 7)),
            np.where(none, np.nan, np.round(lon, 7)),
            np.where(none, np.nan, np.round(self.gps_acc, 1)),
        )

    def _gps_quality(self, x: F64, y: F64) -> npt.NDArray[np.int8]:
        quality = np.zeros(len(x), dtype=np.int8)
        for k, area in enumerate(self.areas):
            level = {"good": 0, "poor": 1, "none": 2}[area.spec.gps]
            if not level:
                continue
            inside = (self.area_of == k) & self.crew & area.shape.contains(x, y)
            quality = np.where(inside, np.maximum(quality, level), quality).astype(np.int8)
        return quality

    # ------------------------------------------------------------------ commands

    def _ack(
        self,
        i: int,
        cmd_id: str,
        status: AckStatus,
        detail: str | None = None,
        *,
        record: bool = True,
    ) -> Ack:
        if record:
            self._commands[(i, cmd_id)] = _CommandState(status, detail)
        return Ack(
            cmd_id=cmd_id,
            device_id=self.devices[i],
            status=status,
            ts_ms=self.device_ms(i),
            detail=detail,
        )

    def _done(self, i: int, cmd_id: str, detail: str | None = None) -> None:
        self._acks.append(self._ack(i, cmd_id, AckStatus.DONE, detail))

    def _apply_pending(self, t: float) -> None:
        pending, self._pending = self._pending, []
        for i, cmd in pending:
            if not self.alive[i]:
                continue
            if not self.worn[i] or self.fallen[i]:
                log.info(
                    "device %s: %s not carried out (nobody reacts)", self.devices[i], cmd.action
                )
                continue
            self._carry_out(i, cmd, t)

    def _carry_out(self, i: int, cmd: Command, t: float) -> None:
        action = Action(cmd.action)
        if action is Action.REST:
            duration = cmd.params.get("duration_s")
            if isinstance(duration, int | float) and not isinstance(duration, bool):
                self.rest_until[i] = t + float(duration)
            else:
                self.rest_until[i] = math.inf
            self._done(i, cmd.cmd_id, "resting")
        elif action is Action.RESUME:
            self._resume(i)
            self._done(i, cmd.cmd_id, "back to work")
        elif action in (Action.EVACUATE, Action.STOP_WORK):
            self._leave_area(i, cmd.cmd_id, hurry=action is Action.EVACUATE)
        else:
            text = str(cmd.params.get("text", ""))
            self.messages.append((self.device_ms(i), self.devices[i], text))
            log.info("device %s shows message %r", self.devices[i], text)
            self._done(i, cmd.cmd_id, "shown")

    def _resume(self, i: int) -> None:
        self.rest_until[i] = -math.inf
        self._leaving.pop(i, None)
        if self.at_muster[i] or self.move.moving[i]:
            self.at_muster[i] = False
            home = (float(self.move.home_x[i]), float(self.move.home_y[i]))
            self.move.walk(i, [home])

    def _leave_area(self, i: int, cmd_id: str, *, hurry: bool) -> None:
        x, y = float(self.move.x[i]), float(self.move.y[i])
        inside = [k for k, a in enumerate(self.areas) if a.shape.inside(x, y)]
        area = self.workers[i].area if self.workers[i].area in inside else (inside or [-1])[0]
        path = self.areas[area].way_out(x, y) if area >= 0 else []
        self.move.walk(i, [*path, self.muster], hurry=hurry, then=self._reached_muster)
        self._leaving[i] = (cmd_id, area)
        self._check_leaving()

    def _reached_muster(self, i: int) -> None:
        self.at_muster[i] = True

    def _check_leaving(self) -> None:
        for i, (cmd_id, area) in list(self._leaving.items()):
            if area < 0 or not bool(self.inside_area(area, [i])[0]):
                del self._leaving[i]
                self._done(i, cmd_id, "out of the work area")

    # ------------------------------------------------------------------ truth

    def truth_state(self, key: tuple[Any, int], i: int, kind: str, on: bool) -> None:
        """Open or close a ground-truth interval for device ``i`` (called every step)."""
        if on and key not in self._open:
            self._open[key] = (i, str(kind), self.now_ms)
        elif not on and key in self._open:
            _, _, onset = self._open.pop(key)
            self._truth.append(self._record(i, kind, onset, self.now_ms))

    def _record(self, i: int, kind: str, onset: int, end: int) -> TruthRecord:
        w = self.workers[i]
        return TruthRecord(w.device_id, w.worker_id, kind, onset, end)

    def _links_down(self, t: float) -> frozenset[str]:
        return frozenset(
            o.link for o in self.scenario.network.outages if o.at <= t < o.at + o.duration
        )

    def _observe_outages(self, t: float) -> None:
        down = self._links_down(t)
        for link in self.links:
            if link.kind == "shared":
                continue
            for i in link.devices:
                on = link.id in down and bool(self.alive[i])
                self.truth_state(("outage", i), i, IncidentKind.NETWORK_OUTAGE, on)

    def _record_core_temp(self, t: float) -> None:
        m = self._minutes
        minute = int(t // 60)
        if minute != m.minute and m.count:
            m.starts.append(self.start_ms + m.minute * 60_000)
            m.means.append(m.total / m.count)
            m.total, m.count = np.zeros(len(self.workers)), 0
        m.minute = minute
        m.total += self.bodies.ct
        m.count += 1

    def truth(self) -> dict[str, Any]:
        """Ground truth so far: incidents per device, and the true core temperature per
        device-minute (mean over the minute starting at ``minute_ms``)."""
        end = self.now_ms
        records = list(self._truth)
        records += [self._record(i, kind, onset, end) for i, kind, onset in self._open.values()]
        records.sort(key=lambda r: (r.onset_ms, r.device_id, r.kind))
        m = self._minutes
        starts, means = list(m.starts), list(m.means)
        if m.count:
            starts.append(self.start_ms + m.minute * 60_000)
            means.append(m.total / m.count)
        table = np.array(means) if means else np.zeros((0, len(self.workers)))
        return {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "start_ms": self.start_ms,
            "end_ms": end,
            "incidents": [r.to_json() for r in records],
            "core_temp": [
                {
                    "device_id": w.device_id,
                    "worker_id": w.worker_id,
                    "minute_ms": starts,
                    "core_temp_c": [round(float(v), 3) for v in table[:, i]],
                }
                for i, w in enumerate(self.workers)
            ],
        }

    # ------------------------------------------------------------------ descriptions

    def workers_json(self) -> list[dict[str, Any]]:
        """The ``workers.json`` the detectors' replay reads."""
        return [
            {
                "device_id": w.device_id,
                "worker_id": w.worker_id,
                "age": w.age,
                "acclimatized": w.acclimatized,
                "resting_hr": w.resting_hr,
            }
            for w in self.workers
        ]

    def permits_json(self) -> list[dict[str, Any]]:
        """The ``permits.json`` the detectors' replay reads (polygons as enclosing circles)."""
        out = []
        for p in self.scenario.permits:
            area = self.areas[self.area_index[p.area]]
            lat, lon = self.frame.to_latlon(*area.shape.centre)
            watcher = self.workers[self.worker_index[p.watcher]].device_id if p.watcher else None
            out.append(
                {
                    "permit_id": p.id,
                    "type": p.type,
                    "level": p.level,
                    "devices": [self.workers[self.worker_index[w]].device_id for w in p.workers],
                    "watcher_device": watcher,
                    "lat": round(float(lat), 7),
                    "lon": round(float(lon), 7),
                    "radius_m": round(area.shape.enclosing_radius(), 1),
                }
            )
        return out


def _cmd_id_of(payload: bytes | Command) -> str | None:
    """The ``cmd_id`` of an invalid command, when one can be read (to answer ``failed``)."""
    if isinstance(payload, Command):
        return payload.cmd_id
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    cmd_id = data.get("cmd_id") if isinstance(data, dict) else None
    return cmd_id if isinstance(cmd_id, str) and 0 < len(cmd_id) <= 64 else None
