"""Distances on the Earth for check-ins, on-site approvals and SIMOPS radii."""

from __future__ import annotations

import math

from permits.models import GeoPoint

#: Mean Earth radius (IUGG), metres. A sphere is within 0.5 % of WGS 84 at these distances.
EARTH_RADIUS_M = 6_371_008.8


def distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle (haversine) distance between two points, metres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp = p2 - p1
    dl = math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def offset(origin: GeoPoint, *, metres: float, bearing_deg: float) -> GeoPoint:
    """The point ``metres`` away from ``origin`` along ``bearing_deg`` (0 = north)."""
    d = metres / EARTH_RADIUS_M
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(origin.lat), math.radians(origin.lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return GeoPoint(lat=math.degrees(p2), lon=(math.degrees(l2) + 540.0) % 360.0 - 180.0)


def valid_point(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180
