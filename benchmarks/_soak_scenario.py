"""The soak's scenario: a background fleet plus waves of incidents on live permits.

Each wave has its own confined space (an SX permit: two entrants and a watcher) whose
atmosphere fails, and its own hot-work yard (a DH permit: three workers and a watcher) where
one worker presses SOS, one falls and lies still, one overheats (only in waves with 40 minutes
left: heat strain builds up slowly), and then the watcher walks away. Every permit stands
on its own spot of a grid 80 m apart (beyond the 50 m SIMOPS radius) and every person is on
exactly one permit with at most one incident, so each incident's action can be told apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firmware_sim.scenario import Scenario, parse_scenario

SITE = "soak-site"
ORIGIN = (30.7395, 121.3442)
#: Grid spacing of the work areas, in degrees (≈ 80 m at this latitude).
STEP_LAT, STEP_LON = 0.00072, 0.00084
#: When, within a wave, each incident starts (seconds after the wave's start).
O2_AT, SOS_AT, FALL_AT, AWAY_AT, HEAT_AT = 0, 10, 15, 20, 0
#: How long an incident runs, and how far the watcher goes (beyond the 50 m work area the
#: detectors draw around a permit's work point). The slowest short action (SpO2 falls for
#: ~40 s, then 15 s below 90 %) is decided ~60 s into the wave.
O2_FOR, AWAY_FOR, AWAY_M, FALL_FOR = 90, 60, 80, 75
WAVE_SPAN_S = 80.0
#: Heat strain: the simulated core temperature rises at most 0.09 °C/min
#: (`firmware_sim.physiology.CT_MAX_RATE`), so HR is pulled above 180 − age only ~25 min into
#: the episode, and the critical alarm takes three minutes more: only a wave with 40 minutes
#: left gets one (none in runs shorter than ~45 min).
HEAT_FOR, HEAT_SPAN_S = 2400, 2400.0
ROLES = ("e1", "e2", "sxw", "sos", "fall", "hot", "dhw")


@dataclass(frozen=True, slots=True)
class Wave:
    """One wave's permits and people."""

    index: int
    at_s: float
    heat: bool

    @property
    def sx(self) -> str:
        return f"SX-{self.index:02d}"

    @property
    def dh(self) -> str:
        return f"DH-{self.index:02d}"

    def worker(self, role: str) -> str:
        return f"w{self.index:02d}-{role}"

    def device(self, role: str) -> str:
        return f"soak-{self.index:02d}-{role}"


def wave_times(duration_s: float, every_s: float, lead_s: float) -> list[float]:
    """Start of each wave: from ``lead_s`` every ``every_s`` while the wave fits in the run."""
    out, t = [], lead_s
    while t + WAVE_SPAN_S <= duration_s:
        out.append(t)
        t += every_s
    return out


def _spot(k: int) -> tuple[float, float]:
    row, col = divmod(k, 6)
    return ORIGIN[0] - 0.0030 + row * STEP_LAT, ORIGIN[1] - 0.0021 + col * STEP_LON


Rows = list[dict[str, Any]]


def _wave(w: Wave) -> tuple[Rows, Rows, Rows, Rows]:
    tank_lat, tank_lon = _spot(2 * w.index)
    yard_lat, yard_lon = _spot(2 * w.index + 1)
    gate = {"lat": round(tank_lat + 0.000072, 6), "lon": tank_lon}  # 8 m north: the manhole
    areas: Rows = [
        {
            "id": f"tank-{w.index:02d}",
            "circle": {"lat": tank_lat, "lon": tank_lon, "radius_m": 8},
            "entry": gate,
            "exit": gate,
            "confined": True,
        },
        {"id": f"yard-{w.index:02d}", "circle": {"lat": yard_lat, "lon": yard_lon, "radius_m": 20}},
    ]
    permits: Rows = [
        {"id": w.sx, "type": "SX", "area": f"tank-{w.index:02d}",
         "workers": [w.worker("e1"), w.worker("e2")], "watcher": w.worker("sxw")},
        {"id": w.dh, "type": "DH", "level": "2", "area": f"yard-{w.index:02d}",
         "workers": [w.worker(r) for r in ("sos", "fall", "hot")], "watcher": w.worker("dhw")},
    ]  # fmt: skip
    workers: Rows = [
        {"id": w.worker(r), "device": w.device(r), "age": 28 + 3 * j} for j, r in enumerate(ROLES)
    ]
    workers[ROLES.index("hot")]["workload"] = "moderate"  # heat strain builds up while working
    incidents: Rows = [
        {"kind": "o2_deficient", "area": f"tank-{w.index:02d}", "at": w.at_s + O2_AT,
         "duration": O2_FOR},
        {"kind": "sos", "worker": w.worker("sos"), "at": w.at_s + SOS_AT},
        {"kind": "fall", "worker": w.worker("fall"), "at": w.at_s + FALL_AT,
         "duration": FALL_FOR},
        {"kind": "watcher_away", "worker": w.worker("dhw"), "at": w.at_s + AWAY_AT,
         "duration": AWAY_FOR, "distance_m": AWAY_M},
    ]  # fmt: skip
    if w.heat:
        incidents.append(
            {"kind": "heat_strain", "worker": w.worker("hot"), "at": w.at_s + HEAT_AT,
             "duration": HEAT_FOR}
        )  # fmt: skip
    return areas, permits, workers, incidents


def build(
    *, duration_s: float, devices: int, every_s: float, lead_s: float, seed: int
) -> tuple[Scenario, list[Wave]]:
    """The scenario (played from now) and its waves."""
    waves = [
        Wave(k, t, heat=t + HEAT_SPAN_S <= duration_s)
        for k, t in enumerate(wave_times(duration_s, every_s, lead_s))
    ]
    areas: list[dict[str, Any]] = []
    permits: list[dict[str, Any]] = []
    workers: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    for w in waves:
        a, p, wk, i = _wave(w)
        areas, permits, workers, incidents = areas + a, permits + p, workers + wk, incidents + i
    data = {
        "version": 1,
        "name": "soak",
        "description": f"soak: {devices} background wearables, {len(waves)} incident waves",
        "seed": seed,
        "duration": duration_s,
        "warmup": 60,
        "site": {
            "id": SITE,
            "origin": {"lat": ORIGIN[0], "lon": ORIGIN[1]},
            "roam_radius_m": 400,
            "muster": {"lat": ORIGIN[0] + 0.0035, "lon": ORIGIN[1]},
            "areas": areas,
        },
        "permits": permits,
        "workers": workers,
        "incidents": incidents,
        "background": {"devices": devices, "prefix": "soak-bg"},
    }
    return parse_scenario(data, source="soak"), waves
