"""Scenario files (YAML): site, work areas, permits, workers, schedule, incidents, network.

The format is documented in ``docs/simulator.md``; ``load_scenario`` is the only way in and
refuses a bad file with ``ScenarioError`` naming each field and reason.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from firmware_sim.errors import ScenarioError
from ingest.wire import DEVICE_ID_RE, RESERVED_DEVICE_IDS

#: Where the bundled scenarios live (``demo.yaml`` and the test and benchmark scenarios).
BUNDLED = Path(__file__).with_name("scenarios")

_DURATION_RE = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string such as ``"90s"``, ``"8m"``, ``"1h30m"``,
    ``"12:30"`` (minutes:seconds) or ``"1:02:03"``; anything else is left to pydantic."""
    if isinstance(value, bool) or not isinstance(value, str):
        return value
    text = value.strip()
    if ":" in text:
        parts = text.split(":")
        if 2 <= len(parts) <= 3 and all(p.strip().replace(".", "", 1).isdigit() for p in parts):
            total = 0.0
            for p in parts:
                total = total * 60 + float(p)
            return total
        raise ValueError(f"{value!r} is not [h:]mm:ss")
    m = _DURATION_RE.match(text)
    if not m or not any(m.groups()):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a duration such as 90s, 8m, 1h30m") from None
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Ident = Annotated[str, Field(pattern=DEVICE_ID_RE.pattern, description="1-64 of [A-Za-z0-9._-]")]


class Workload(StrEnum):
    """Work intensity classes (ACGIH TLV metabolic-rate categories)."""

    REST = "rest"
    LIGHT = "light"
    MODERATE = "moderate"
    HEAVY = "heavy"
    VERY_HEAVY = "very_heavy"


class Clothing(StrEnum):
    """Protective clothing, with its ACGIH clothing adjustment value (°C-WBGT)."""

    WORK_CLOTHES = "work_clothes"  # 0
    COVERALLS = "coveralls"  # 0
    POLYOLEFIN = "polyolefin"  # +1
    DOUBLE_LAYER = "double_layer"  # +3
    VAPOUR_BARRIER = "vapour_barrier"  # +11


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Model):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class CircleSpec(_Model):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=5000)


class AreaSpec(_Model):
    """A work area: a circle (centre + radius) or a polygon of ``[lat, lon]`` vertices."""

    id: Ident
    name: str = ""
    circle: CircleSpec | None = None
    polygon: list[tuple[float, float]] | None = Field(default=None, min_length=3)
    exit: Point | None = Field(
        default=None, description="Gate people leave by (else straight out)."
    )
    entry: Point | None = Field(default=None, description="Where the watcher stands (a manhole).")
    confined: bool = False
    gps: Literal["good", "poor", "none"] = Field(
        default="good", description="GPS quality for the crew inside (steel vessels: poor/none)."
    )
    wbgt_offset_c: float = Field(default=0.0, ge=-10, le=15, description="Local heat (radiant).")

    @model_validator(mode="after")
    def _one_shape(self) -> AreaSpec:
        if (self.circle is None) == (self.polygon is None):
            raise ValueError("give exactly one of 'circle' or 'polygon'")
        return self


class SiteSpec(_Model):
    id: Ident = "demo-site"
    origin: Point = Point(lat=30.7395, lon=121.3442)
    wbgt_c: float = Field(default=26.0, ge=0, le=40, description="Site WBGT (°C).")
    ambient_c: float = Field(default=30.0, ge=-30, le=50, description="Dry-bulb air (°C).")
    muster: Point | None = Field(default=None, description="Assembly point (default: origin).")
    roam_radius_m: float = Field(default=150.0, gt=0, le=5000, description="Where others roam.")
    areas: list[AreaSpec] = []


PermitType = Literal["DH", "SX", "MB", "GC", "DZ", "YD", "DT", "DL"]


class PermitSpec(_Model):
    """A permit (GB 30871 type code) over one work area: its crew and its watcher."""

    id: Ident
    type: PermitType
    level: str | None = Field(default=None, max_length=16)
    area: Ident
    workers: list[Ident] = Field(min_length=1)
    watcher: Ident | None = None


class WorkerSpec(_Model):
    """A person and the wearable they carry."""

    id: Ident
    device: Ident
    name: str = ""
    age: int = Field(default=35, ge=16, le=75)
    acclimatized: bool = True
    resting_hr: float = Field(default=68.0, ge=40, le=100)
    fitness: float = Field(default=0.5, ge=0, le=1, description="0 unfit … 1 very fit.")
    clothing: Clothing = Clothing.WORK_CLOTHES
    workload: Workload | None = Field(default=None, description="Initial workload.")
    area: Ident | None = Field(default=None, description="Work area (default: the permit's).")
    clock_skew_s: float = Field(default=0.0, ge=-3600, le=3600)
    clock_drift_ppm: float = Field(default=0.0, ge=-1000, le=1000)
    duplicate_p: float = Field(default=0.0, ge=0, le=1, description="Chance a frame is re-sent.")
    buffer_samples: int = Field(default=86_400, ge=1, description="Store-and-forward capacity.")
    battery_pct: float | None = Field(default=None, ge=0, le=100)


class ScheduleEntry(_Model):
    at: Duration
    workers: list[Ident] = []
    permits: list[Ident] = []
    workload: Workload

    @model_validator(mode="after")
    def _someone(self) -> ScheduleEntry:
        if not (self.workers or self.permits):
            raise ValueError("name 'workers' or 'permits'")
        return self


class _Incident(_Model):
    at: Duration
    duration: Duration | None = Field(default=None, description="None: until the end.")


class HeatStrain(_Incident):
    kind: Literal["heat_strain"]
    worker: Ident
    peak_c: float = Field(default=39.6, ge=38.6, le=41.0, description="Core temperature driven to.")
    hr_margin_bpm: float = Field(default=12.0, ge=0, le=40, description="HR above 180 − age.")


class O2Deficient(_Incident):
    kind: Literal["o2_deficient"]
    area: Ident
    spo2_min: float = Field(default=83.0, ge=60, le=89)
    fall_tau_s: float = Field(default=35.0, gt=0, le=600)
    recovery_tau_s: float = Field(default=25.0, gt=0, le=600)


class Fall(_Incident):
    kind: Literal["fall"]
    worker: Ident


class Sos(_Incident):
    kind: Literal["sos"]
    worker: Ident
    hold_s: float = Field(default=3.0, gt=0, le=60)


class DeviceRemoved(_Incident):
    kind: Literal["device_removed"]
    worker: Ident


class SensorDropout(_Incident):
    kind: Literal["sensor_dropout"]
    worker: Ident
    fields: list[Literal["hr", "skin_temp", "spo2", "gps", "motion"]] = Field(
        default=["hr", "spo2", "skin_temp"], min_length=1
    )


class GpsWander(_Incident):
    kind: Literal["gps_wander"]
    worker: Ident
    distance_m: float = Field(default=40.0, gt=0, le=2000)
    mode: Literal["walk", "drift"] = "walk"


class WatcherAway(_Incident):
    kind: Literal["watcher_away"]
    worker: Ident
    distance_m: float = Field(default=60.0, gt=0, le=2000)


class BatteryDeath(_Incident):
    kind: Literal["battery_death"]
    worker: Ident
    warning_s: Duration = 300.0


Incident = Annotated[
    HeatStrain
    | O2Deficient
    | Fall
    | Sos
    | DeviceRemoved
    | SensorDropout
    | GpsWander
    | WatcherAway
    | BatteryDeath,
    Field(discriminator="kind"),
]


class GatewaySpec(_Model):
    """An edge gateway relaying several wearables in gateway frames over one connection."""

    id: Ident
    devices: list[Ident] = Field(min_length=1)
    max_frame_samples: int = Field(default=500, ge=1, le=65_535)


class OutageSpec(_Model):
    """No network for a link (a device or a gateway) for a while: store and forward."""

    link: Ident
    at: Duration
    duration: Duration = Field(gt=0)


class NetworkSpec(_Model):
    outages: list[OutageSpec] = []
    replay_frame_samples: int = Field(default=60, ge=1, le=65_535)


class CommandSpec(_Model):
    """A command the scenario itself sends (what a rule engine or a person would send)."""

    at: Duration
    worker: Ident
    action: str = Field(max_length=32)
    params: dict[str, Any] = {}


class BackgroundSpec(_Model):
    """Extra workers roaming the site on no permit (operators on their rounds)."""

    devices: int = Field(default=0, ge=0, le=200_000)
    prefix: Ident = "bg"


class Scenario(_Model):
    """A complete scenario. Times are seconds from the start of play (after ``warmup``)."""

    version: Literal[1] = 1
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    seed: int = Field(default=1, ge=0)
    start: dt.datetime = Field(
        default=dt.datetime(2025, 7, 15, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        description="Time of t=0 in exports (live play starts now).",
    )
    duration: Duration | None = Field(default=None, description="None: play until stopped.")
    warmup: Duration = Field(default=0.0, le=6 * 3600, description="Silent history before t=0.")
    rate_hz: float = Field(default=1.0, ge=0.1, le=10)
    encoding: Literal["binary", "json"] = "binary"
    site: SiteSpec = SiteSpec()
    permits: list[PermitSpec] = []
    workers: list[WorkerSpec] = []
    schedule: list[ScheduleEntry] = []
    incidents: list[Incident] = []
    network: NetworkSpec = NetworkSpec()
    gateways: list[GatewaySpec] = []
    commands: list[CommandSpec] = []
    background: BackgroundSpec = BackgroundSpec()

    @model_validator(mode="after")
    def _aware_start(self) -> Scenario:
        if self.start.tzinfo is None:
            raise ValueError("'start' needs a time zone, e.g. 2025-07-15T09:00:00+08:00")
        return self

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    def worker(self, worker_id: str) -> WorkerSpec:
        return next(w for w in self.workers if w.id == worker_id)

    def worker_area(self, worker_id: str) -> str | None:
        """A worker's work area: their own ``area``, else that of their (first) permit."""
        own = self.worker(worker_id).area
        if own is not None:
            return own
        for p in self.permits:
            if worker_id in p.workers or worker_id == p.watcher:
                return p.area
        return None

    def gateway_of(self, device_id: str) -> str | None:
        return next((g.id for g in self.gateways if device_id in g.devices), None)

    def area(self, area_id: str) -> AreaSpec:
        return next(a for a in self.site.areas if a.id == area_id)


# --------------------------------------------------------------------------- loading


def bundled_names() -> list[str]:
    """File names of the scenarios shipped with the package."""
    return sorted(p.name for p in BUNDLED.iterdir() if p.suffix in (".yaml", ".yml"))


def resolve(name_or_path: str | Path) -> Path:
    """A scenario path: an existing file, else a bundled scenario of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = BUNDLED / path.name
    if bundled.is_file():
        return bundled
    raise ScenarioError(
        str(name_or_path),
        [("(file)", f"no such file and no bundled scenario; bundled: {bundled_names()}")],
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Read and validate a scenario file (a path or a bundled name such as ``demo.yaml``).

    Raises:
        ScenarioError: naming every invalid field with its reason.
    """
    path = resolve(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(path), [("(file)", str(exc))]) from exc
    return parse_scenario(text, source=str(path))


def parse_scenario(text: str | dict[str, Any], *, source: str = "<inline>") -> Scenario:
    """Validate scenario YAML text (or an already parsed mapping)."""
    if isinstance(text, str):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"(yaml line {mark.line + 1})" if mark is not None else "(yaml)"
            raise ScenarioError(source, [(where, str(getattr(exc, "problem", exc)))]) from exc
    else:
        data = text
    if not isinstance(data, dict):
        raise ScenarioError(source, [("(top)", "a scenario is a mapping of fields")])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [(_loc(e["loc"]) or "(top)", e["msg"]) for e in exc.errors()]
        raise ScenarioError(source, problems) from exc
    if problems := list(check_references(scenario)):
        raise ScenarioError(source, problems)
    return scenario


def _loc(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc)


def check_references(s: Scenario) -> Iterable[tuple[str, str]]:
    """Cross-field rules pydantic cannot see: unique ids and references that resolve."""
    yield from _duplicates("site.areas", [a.id for a in s.site.areas])
    yield from _duplicates("permits", [p.id for p in s.permits])
    yield from _duplicates("workers", [w.id for w in s.workers])
    yield from _duplicates("workers.device", [w.device for w in s.workers])
    yield from _duplicates("gateways", [g.id for g in s.gateways])
    areas = {a.id for a in s.site.areas}
    workers = {w.id for w in s.workers}
    devices = {w.device for w in s.workers}
    permits = {p.id for p in s.permits}
    watchers = {p.watcher for p in s.permits if p.watcher}
    for i, w in enumerate(s.workers):
        if w.device in RESERVED_DEVICE_IDS:
            yield f"workers.{i}.device", f"{w.device!r} is reserved"
        if w.area is not None and w.area not in areas:
            yield f"workers.{i}.area", f"unknown area {w.area!r}"
    for i, p in enumerate(s.permits):
        if p.area not in areas:
            yield f"permits.{i}.area", f"unknown area {p.area!r}"
        for j, wid in enumerate(p.workers):
            if wid not in workers:
                yield f"permits.{i}.workers.{j}", f"unknown worker {wid!r}"
        if p.watcher is not None and p.watcher not in workers:
            yield f"permits.{i}.watcher", f"unknown worker {p.watcher!r}"
        if p.watcher is not None and p.watcher in p.workers:
            yield f"permits.{i}.watcher", "the watcher cannot also be on the crew (GB 30871 4.10)"
    for i, e in enumerate(s.schedule):
        yield from _refs(f"schedule.{i}.workers", e.workers, workers, "worker")
        yield from _refs(f"schedule.{i}.permits", e.permits, permits, "permit")
    yield from _incident_refs(s, areas, workers, watchers)
    gateway_ids = {g.id for g in s.gateways}
    seen: Counter[str] = Counter()
    for i, g in enumerate(s.gateways):
        if g.id in devices:
            yield f"gateways.{i}.id", f"{g.id!r} is also a device id"
        yield from _refs(f"gateways.{i}.devices", g.devices, devices, "device")
        seen.update(g.devices)
    for device, n in seen.items():
        if n > 1:
            yield "gateways", f"device {device!r} is behind {n} gateways"
    for i, o in enumerate(s.network.outages):
        if o.link not in devices | gateway_ids:
            yield f"network.outages.{i}.link", f"unknown device or gateway {o.link!r}"
        elif o.link in seen:
            yield f"network.outages.{i}.link", f"{o.link!r} is behind a gateway: name the gateway"
    for i, c in enumerate(s.commands):
        if c.worker not in workers:
            yield f"commands.{i}.worker", f"unknown worker {c.worker!r}"
    yield from _times(s)
    prefix = s.background.prefix + "-"
    for i, w in enumerate(s.workers):
        if s.background.devices and w.device.startswith(prefix):
            yield f"workers.{i}.device", f"prefix {prefix!r} is taken by background devices"


def _incident_refs(
    s: Scenario, areas: set[str], workers: set[str], watchers: set[str]
) -> Iterable[tuple[str, str]]:
    for i, inc in enumerate(s.incidents):
        if isinstance(inc, O2Deficient):
            if inc.area not in areas:
                yield f"incidents.{i}.area", f"unknown area {inc.area!r}"
            continue
        if inc.worker not in workers:
            yield f"incidents.{i}.worker", f"unknown worker {inc.worker!r}"
        elif isinstance(inc, WatcherAway) and inc.worker not in watchers:
            yield f"incidents.{i}.worker", f"{inc.worker!r} is no permit's watcher"
        elif isinstance(inc, GpsWander | WatcherAway) and s.worker_area(inc.worker) is None:
            yield f"incidents.{i}.worker", f"{inc.worker!r} has no work area to leave"


def _times(s: Scenario) -> Iterable[tuple[str, str]]:
    if s.duration is None:
        return
    timed: list[tuple[str, float]] = [(f"schedule.{i}.at", e.at) for i, e in enumerate(s.schedule)]
    timed += [(f"incidents.{i}.at", e.at) for i, e in enumerate(s.incidents)]
    timed += [(f"network.outages.{i}.at", o.at) for i, o in enumerate(s.network.outages)]
    timed += [(f"commands.{i}.at", c.at) for i, c in enumerate(s.commands)]
    for field, at in timed:
        if at >= s.duration:
            yield field, f"{at:g} s is not before the scenario's end ({s.duration:g} s)"


def _duplicates(field: str, ids: list[str]) -> Iterable[tuple[str, str]]:
    for key, n in Counter(ids).items():
        if n > 1:
            yield field, f"id {key!r} appears {n} times"


def _refs(field: str, names: list[str], known: set[str], what: str) -> Iterable[tuple[str, str]]:
    for j, name in enumerate(names):
        if name not in known:
            yield f"{field}.{j}", f"unknown {what} {name!r}"
