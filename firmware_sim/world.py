"""Where everyone is and how they move: work spots, wandering, walking along paths."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from firmware_sim.geo import Circle, LocalFrame, Polygon, Shape
from firmware_sim.scenario import AreaSpec, Point, Scenario

F64 = npt.NDArray[np.float64]

WALK_SPEED = 1.1  # m/s, an ordinary walk on a plant site
HURRY_SPEED = 1.5  # m/s, an evacuation
WANDER_SD_M = 1.5  # how far a worker drifts around their work spot
WANDER_TAU_S = 120.0


@dataclass(frozen=True)
class Area:
    """A work area resolved into the local frame."""

    spec: AreaSpec
    shape: Shape
    exit: tuple[float, float] | None
    entry: tuple[float, float] | None

    @property
    def id(self) -> str:
        return self.spec.id

    def way_out(self, x: float, y: float, margin_m: float = 5.0) -> list[tuple[float, float]]:
        """Waypoints that leave the area from ``(x, y)``: through the gate if there is one."""
        if self.exit is not None:
            gx, gy = self.exit
            cx, cy = self.shape.centre
            d = math.hypot(gx - cx, gy - cy) or 1.0
            beyond = (gx + (gx - cx) / d * margin_m, gy + (gy - cy) / d * margin_m)
            return [self.exit, beyond]
        return [self.shape.exit_point(x, y, margin_m)]


def resolve_areas(scenario: Scenario, frame: LocalFrame) -> list[Area]:
    areas = []
    for spec in scenario.site.areas:
        shape: Shape
        if spec.circle is not None:
            cx, cy = frame.to_xy(spec.circle.lat, spec.circle.lon)
            shape = Circle(centre=(float(cx), float(cy)), radius=spec.circle.radius_m)
        else:
            assert spec.polygon is not None
            shape = Polygon(
                tuple(
                    (float(a), float(b))
                    for a, b in (frame.to_xy(la, lo) for la, lo in spec.polygon)
                )
            )
        exit_, entry = _xy(frame, spec.exit), _xy(frame, spec.entry)
        areas.append(Area(spec=spec, shape=shape, exit=exit_, entry=entry))
    return areas


def _xy(frame: LocalFrame, p: Point | None) -> tuple[float, float] | None:
    if p is None:
        return None
    x, y = frame.to_xy(p.lat, p.lon)
    return float(x), float(y)


Arrival = Callable[[int], None]


class Movement:
    """Positions of every worker in metres east/north of the site origin.

    A worker is either stationary at an anchor (their work spot, the muster point, …) and
    wanders around it, or walks along waypoints at a speed; on arrival the walk's callback runs.
    """

    def __init__(self, anchor_x: F64, anchor_y: F64, rng: np.random.Generator) -> None:
        n = len(anchor_x)
        self.home_x, self.home_y = anchor_x.copy(), anchor_y.copy()
        self.anchor_x, self.anchor_y = anchor_x.copy(), anchor_y.copy()
        self.wander_x = rng.normal(0.0, WANDER_SD_M, n)
        self.wander_y = rng.normal(0.0, WANDER_SD_M, n)
        self.x, self.y = anchor_x + self.wander_x, anchor_y + self.wander_y
        self.moving = np.zeros(n, dtype=bool)
        self.hurry = np.zeros(n, dtype=bool)
        self.frozen = np.zeros(n, dtype=bool)
        self.tx, self.ty = self.x.copy(), self.y.copy()
        self.speed = np.full(n, WALK_SPEED)
        self._paths: dict[int, deque[tuple[float, float]]] = {}
        self._arrival: dict[int, Arrival | None] = {}

    def walk(
        self,
        i: int,
        waypoints: list[tuple[float, float]],
        *,
        hurry: bool = False,
        then: Arrival | None = None,
    ) -> None:
        """Send worker ``i`` along ``waypoints`` (replacing any walk in progress)."""
        path = deque(waypoints)
        self.tx[i], self.ty[i] = path.popleft()
        self._paths[i] = path
        self._arrival[i] = then
        self.moving[i] = True
        self.hurry[i] = hurry
        self.speed[i] = HURRY_SPEED if hurry else WALK_SPEED

    def stop(self, i: int) -> None:
        """Stand still where ``i`` is now (anchor here)."""
        self.moving[i] = False
        self._paths.pop(i, None)
        self._arrival.pop(i, None)
        self.anchor_x[i], self.anchor_y[i] = self.x[i], self.y[i]
        self.wander_x[i] = self.wander_y[i] = 0.0

    def step(self, dt: float, rng: np.random.Generator) -> None:
        n = len(self.x)
        phi = math.exp(-dt / WANDER_TAU_S)
        k = math.sqrt(1 - phi * phi) * WANDER_SD_M
        self.wander_x = phi * self.wander_x + k * rng.standard_normal(n)
        self.wander_y = phi * self.wander_y + k * rng.standard_normal(n)
        still = ~self.moving & ~self.frozen
        self.x = np.where(still, self.anchor_x + self.wander_x, self.x)
        self.y = np.where(still, self.anchor_y + self.wander_y, self.y)
        walkers = np.flatnonzero(self.moving & ~self.frozen)
        if not len(walkers):
            return
        dx, dy = self.tx[walkers] - self.x[walkers], self.ty[walkers] - self.y[walkers]
        dist = np.hypot(dx, dy)
        step = self.speed[walkers] * dt
        frac = np.where(dist > step, step / np.maximum(dist, 1e-9), 1.0)
        self.x[walkers] += dx * frac
        self.y[walkers] += dy * frac
        for i in walkers[dist <= step].tolist():
            self._arrived(i)

    def _arrived(self, i: int) -> None:
        path = self._paths.get(i)
        if path:
            self.tx[i], self.ty[i] = path.popleft()
            return
        then = self._arrival.get(i)
        self.moving[i] = False
        self._paths.pop(i, None)
        self._arrival.pop(i, None)
        self.anchor_x[i], self.anchor_y[i] = self.tx[i], self.ty[i]
        self.wander_x[i] = self.wander_y[i] = 0.0
        if then is not None:
            then(i)
