"""Site geometry in a local metric frame: lat/lon ↔ metres, work areas (circles, polygons)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

#: Metres per degree of latitude (spherical Earth; good to ~0.5 % over a plant site).
M_PER_DEG_LAT = 111_320.0

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LocalFrame:
    """East/north metres around an origin; accurate to centimetres over a few kilometres."""

    lat0: float
    lon0: float

    @property
    def m_per_deg_lon(self) -> float:
        return M_PER_DEG_LAT * math.cos(math.radians(self.lat0))

    def to_xy(self, lat: Any, lon: Any) -> tuple[Any, Any]:
        """Metres east and north of the origin (scalars or arrays)."""
        return (lon - self.lon0) * self.m_per_deg_lon, (lat - self.lat0) * M_PER_DEG_LAT

    def to_latlon(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Latitude and longitude of a point ``x`` m east, ``y`` m north of the origin."""
        return self.lat0 + y / M_PER_DEG_LAT, self.lon0 + x / self.m_per_deg_lon


class Shape:
    """A work area's outline in the local frame."""

    centre: tuple[float, float]

    def contains(self, x: Floats, y: Floats) -> npt.NDArray[np.bool_]:
        raise NotImplementedError

    def enclosing_radius(self) -> float:
        """Radius of the circle around ``centre`` that holds the whole shape."""
        raise NotImplementedError

    def size(self) -> float:
        """A typical half-width, used to place people inside the area."""
        raise NotImplementedError

    def inside(self, x: float, y: float) -> bool:
        return bool(self.contains(np.array([x]), np.array([y]))[0])

    def exit_point(self, x: float, y: float, margin_m: float) -> tuple[float, float]:
        """The first point ``margin_m`` outside the outline on the ray from the centre through
        ``(x, y)`` (straight out, the way a person leaves an area without a gate)."""
        cx, cy = self.centre
        dx, dy = x - cx, y - cy
        norm = math.hypot(dx, dy)
        ux, uy = (dx / norm, dy / norm) if norm > 1e-6 else (0.0, -1.0)
        steps = np.arange(0.0, self.enclosing_radius() + 2.0, 0.5)
        px, py = cx + ux * steps, cy + uy * steps
        outside = np.flatnonzero(~self.contains(px, py))
        d = float(steps[outside[0]]) if len(outside) else float(steps[-1])
        return cx + ux * (d + margin_m), cy + uy * (d + margin_m)


@dataclass(frozen=True)
class Circle(Shape):
    centre: tuple[float, float]
    radius: float

    def contains(self, x: Floats, y: Floats) -> npt.NDArray[np.bool_]:
        cx, cy = self.centre
        result: npt.NDArray[np.bool_] = (x - cx) ** 2 + (y - cy) ** 2 <= self.radius**2
        return result

    def enclosing_radius(self) -> float:
        return self.radius

    def size(self) -> float:
        return self.radius


@dataclass(frozen=True)
class Polygon(Shape):
    vertices: tuple[tuple[float, float], ...]
    centre: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "centre", _centroid(self.vertices))

    def contains(self, x: Floats, y: Floats) -> npt.NDArray[np.bool_]:
        """Even-odd ray casting, vectorised over the points."""
        inside = np.zeros(np.shape(x), dtype=bool)
        n = len(self.vertices)
        for i in range(n):
            x1, y1 = self.vertices[i]
            x2, y2 = self.vertices[(i + 1) % n]
            crosses = (y1 > y) != (y2 > y)
            with np.errstate(divide="ignore", invalid="ignore"):
                xcross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            inside ^= crosses & (x < xcross)
        return inside

    def enclosing_radius(self) -> float:
        cx, cy = self.centre
        return max(math.hypot(vx - cx, vy - cy) for vx, vy in self.vertices)

    def size(self) -> float:
        xs = [v[0] for v in self.vertices]
        ys = [v[1] for v in self.vertices]
        return min(max(xs) - min(xs), max(ys) - min(ys)) / 2


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(math.sqrt(a))


def _centroid(vertices: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """Area centroid (shoelace formula); the vertex mean for a degenerate outline."""
    xs = np.array([v[0] for v in vertices])
    ys = np.array([v[1] for v in vertices])
    xn, yn = np.roll(xs, -1), np.roll(ys, -1)
    cross = xs * yn - xn * ys
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return float(xs.mean()), float(ys.mean())
    return (
        float(((xs + xn) * cross).sum() / (6 * area)),
        float(((ys + yn) * cross).sum() / (6 * area)),
    )
