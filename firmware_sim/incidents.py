"""Injected incidents: how each one changes bodies, movement and devices, and its ground truth.

Each incident runs as a small object with two hooks per tick: ``drive`` (before the bodies and
positions advance: sets incident effects) and ``observe`` (after: reports to the ground truth
whether its signature is present for each device it concerns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from firmware_sim import scenario as sc
from firmware_sim.physiology import Drive

if TYPE_CHECKING:
    from firmware_sim.simulation import Simulation


class IncidentKind(StrEnum):
    """Kinds written to the ground truth."""

    HEAT_STRAIN = "heat_strain"
    O2_DEFICIENT = "o2_deficient"
    FALL = "fall"
    SOS = "sos"
    DEVICE_REMOVED = "device_removed"
    SENSOR_DROPOUT = "sensor_dropout"
    GPS_WANDER = "gps_wander"
    WATCHER_AWAY = "watcher_away"
    BATTERY_DEATH = "battery_death"
    NETWORK_OUTAGE = "network_outage"


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """One injected incident as it affected one device (true time, not the device's clock).

    ``end_ms`` is when the signature ended, or the end of the simulated time if it had not.
    """

    device_id: str
    worker_id: str
    kind: str
    onset_ms: int
    end_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "worker_id": self.worker_id,
            "kind": self.kind,
            "onset_ms": self.onset_ms,
            "end_ms": self.end_ms,
        }


class IncidentRun:
    """Runtime of one scenario incident."""

    kind: IncidentKind

    def __init__(self, spec: Any, sim: Simulation) -> None:
        self.spec = spec
        self.at: float = spec.at
        self.end: float = spec.at + spec.duration if spec.duration is not None else math.inf
        worker = getattr(spec, "worker", None)
        self.targets: list[int] = [sim.worker_index[worker]] if worker else []
        self.key = id(self)

    def active(self, t: float) -> bool:
        return self.at <= t < self.end

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        """Set this step's effects."""

    def observe(self, sim: Simulation, t: float) -> None:
        """Report whether the signature is present (default: while the incident is active)."""
        for i in self.targets:
            sim.truth_state((self.key, i), i, self.kind, self.active(t))


class HeatStrainRun(IncidentRun):
    kind = IncidentKind.HEAT_STRAIN
    spec: sc.HeatStrain

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        if self.active(t):
            for i in self.targets:
                drive.heat_strain[i] = True
                drive.strain_peak_c[i] = self.spec.peak_c
                drive.strain_margin_bpm[i] = self.spec.hr_margin_bpm


class O2DeficientRun(IncidentRun):
    """Oxygen-deficient atmosphere: everyone of the area's crew who is inside it desaturates."""

    kind = IncidentKind.O2_DEFICIENT
    spec: sc.O2Deficient

    def __init__(self, spec: sc.O2Deficient, sim: Simulation) -> None:
        super().__init__(spec, sim)
        self.area = sim.area_index[spec.area]
        self.targets = [
            i for i, w in enumerate(sim.workers) if w.area == self.area and w.role == "crew"
        ]

    def _exposed(self, sim: Simulation, t: float) -> list[tuple[int, bool]]:
        inside = sim.inside_area(self.area, self.targets)
        return [(i, self.active(t) and bool(v)) for i, v in zip(self.targets, inside, strict=True)]

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        for i, exposed in self._exposed(sim, t):
            if exposed:
                drive.hypoxia_drop[i] = max(0.0, sim.bodies.spo2_base[i] - self.spec.spo2_min)
                drive.hypoxia_fall_tau[i] = self.spec.fall_tau_s
            drive.hypoxia_recovery_tau[i] = self.spec.recovery_tau_s

    def observe(self, sim: Simulation, t: float) -> None:
        for i, exposed in self._exposed(sim, t):
            sim.truth_state((self.key, i), i, self.kind, exposed)


class FallRun(IncidentRun):
    """A fall (impact, fall flag) and then no motion until the end (the worker is down)."""

    kind = IncidentKind.FALL

    def __init__(self, spec: sc.Fall, sim: Simulation) -> None:
        super().__init__(spec, sim)
        self.down = False

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        i = self.targets[0]
        if self.active(t) and not self.down:
            self.down = True
            sim.impact[i] = True
            sim.fallen[i] = sim.move.frozen[i] = True
        elif self.down and not self.active(t):
            self.down = False
            sim.fallen[i] = sim.move.frozen[i] = False


class SosRun(IncidentRun):
    kind = IncidentKind.SOS
    spec: sc.Sos

    def __init__(self, spec: sc.Sos, sim: Simulation) -> None:
        super().__init__(spec, sim)
        self.end = self.at + spec.hold_s

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        if self.active(t):
            sim.sos[self.targets[0]] = True
            drive.hr_add[self.targets[0]] += 10.0  # alarm: the wearer is stressed


class DeviceRemovedRun(IncidentRun):
    """The wearable is taken off and put down: flat line, no motion, skin cools to air."""

    kind = IncidentKind.DEVICE_REMOVED

    def __init__(self, spec: sc.DeviceRemoved, sim: Simulation) -> None:
        super().__init__(spec, sim)
        self.off = False

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        i = self.targets[0]
        if self.active(t) and not self.off:
            self.off = True
            sim.take_off(i)
        elif self.off and not self.active(t):
            self.off = False
            sim.put_on(i)


class SensorDropoutRun(IncidentRun):
    kind = IncidentKind.SENSOR_DROPOUT
    spec: sc.SensorDropout

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        if self.active(t):
            for name in self.spec.fields:
                sim.missing[name][self.targets[0]] = True


class _AwayRun(IncidentRun):
    """Someone leaves their work area for a while and comes back."""

    distance_m: float

    def __init__(self, spec: Any, sim: Simulation) -> None:
        super().__init__(spec, sim)
        self.area = sim.workers[self.targets[0]].area
        self.state = "pending"  # pending → away → returning → over

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        i = self.targets[0]
        if self.state == "pending" and self.active(t):
            self.state = "away"
            self._leave(sim, i)
        elif self.state == "away" and t >= self.end:
            self.state = "returning"
            self._come_back(sim, i)

    def _leave(self, sim: Simulation, i: int) -> None:
        area = sim.areas[self.area]
        x, y = float(sim.move.x[i]), float(sim.move.y[i])
        sim.move.walk(i, [area.shape.exit_point(x, y, self.distance_m)])

    def _come_back(self, sim: Simulation, i: int) -> None:
        if sim.leaving_or_evacuated(i):
            self.state = "over"
            return

        def home(j: int) -> None:
            self.state = "over"
            sim.move.anchor_x[j], sim.move.anchor_y[j] = sim.move.home_x[j], sim.move.home_y[j]

        sim.move.walk(i, [(float(sim.move.home_x[i]), float(sim.move.home_y[i]))], then=home)

    def outside(self, sim: Simulation, i: int) -> bool:
        return not bool(sim.inside_area(self.area, [i])[0])

    def observe(self, sim: Simulation, t: float) -> None:
        i = self.targets[0]
        on = self.state in ("away", "returning") and self.outside(sim, i)
        sim.truth_state((self.key, i), i, self.kind, on)


class GpsWanderRun(_AwayRun):
    """``walk``: the worker wanders out of the area; ``drift``: the GPS fix drifts out of it
    (multipath) while the worker stays, with the reported accuracy worsening."""

    kind = IncidentKind.GPS_WANDER
    spec: sc.GpsWander

    def __init__(self, spec: sc.GpsWander, sim: Simulation) -> None:
        super().__init__(spec, sim)
        self.distance_m = spec.distance_m
        self.offset = 0.0

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        if self.spec.mode == "walk":
            super().drive(sim, t, drive)
            return
        i = self.targets[0]
        area = sim.areas[self.area]
        cx, cy = area.shape.centre
        full = area.shape.enclosing_radius() + self.distance_m
        if self.active(t):
            self.state = "away"
            self.offset = min(full, self.offset + full / 60.0 * sim.dt)
        elif self.state == "away":
            self.offset = max(0.0, self.offset - full / 30.0 * sim.dt)
            if self.offset == 0.0:
                self.state = "over"
        dx, dy = float(sim.move.x[i]) - cx, float(sim.move.y[i]) - cy
        d = math.hypot(dx, dy) or 1.0
        sim.gps_offset_x[i], sim.gps_offset_y[i] = dx / d * self.offset, dy / d * self.offset
        sim.gps_degraded[i] = self.offset > 0

    def outside(self, sim: Simulation, i: int) -> bool:
        if self.spec.mode == "walk":
            return super().outside(sim, i)
        x = sim.move.x[i] + sim.gps_offset_x[i]
        y = sim.move.y[i] + sim.gps_offset_y[i]
        return not sim.areas[self.area].shape.inside(float(x), float(y))


class WatcherAwayRun(_AwayRun):
    kind = IncidentKind.WATCHER_AWAY
    spec: sc.WatcherAway

    def __init__(self, spec: sc.WatcherAway, sim: Simulation) -> None:
        super().__init__(spec, sim)
        self.distance_m = spec.distance_m


class BatteryDeathRun(IncidentRun):
    """The battery runs down over ``warning_s`` and the device dies at ``at``; with a duration,
    a fresh battery brings it back."""

    kind = IncidentKind.BATTERY_DEATH
    spec: sc.BatteryDeath

    def __init__(self, spec: sc.BatteryDeath, sim: Simulation) -> None:
        super().__init__(spec, sim)
        self.ramp_start = max(0.0, self.at - spec.warning_s)
        self.level0: float | None = None
        self.dead = False

    def drive(self, sim: Simulation, t: float, drive: Drive) -> None:
        i = self.targets[0]
        if self.ramp_start <= t < self.at:
            if self.level0 is None:
                self.level0 = float(sim.battery[i])
            left = (self.at - t) / max(self.at - self.ramp_start, 1e-9)
            sim.battery[i] = min(float(sim.battery[i]), self.level0 * left)
        if self.active(t) and not self.dead:
            self.dead = True
            sim.battery[i] = 0.0
            sim.kill(i)
        elif self.dead and t >= self.end:
            self.dead = False
            sim.battery[i] = 100.0
            sim.revive(i)

    def observe(self, sim: Simulation, t: float) -> None:
        i = self.targets[0]
        sim.truth_state((self.key, i), i, self.kind, self.dead)


RUNS: dict[type[Any], type[IncidentRun]] = {
    sc.HeatStrain: HeatStrainRun,
    sc.O2Deficient: O2DeficientRun,
    sc.Fall: FallRun,
    sc.Sos: SosRun,
    sc.DeviceRemoved: DeviceRemovedRun,
    sc.SensorDropout: SensorDropoutRun,
    sc.GpsWander: GpsWanderRun,
    sc.WatcherAway: WatcherAwayRun,
    sc.BatteryDeath: BatteryDeathRun,
}


def start(spec: Any, sim: Simulation) -> IncidentRun:
    """The runtime object of a scenario incident."""
    return RUNS[type(spec)](spec, sim)
