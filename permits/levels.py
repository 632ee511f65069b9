"""Levels from the facts (never picked by the applicant) and the validity caps they imply.

Hot work 5.1.1-5.1.4 and 5.2.15; height 8.1.2-8.1.3; lifting 9.1 and B.1 note 3; validity
5.1.5, 6.10, 8.2.11, 10.8 (GB 30871-2022).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from permits.config import PermitSettings
from permits.errors import RuleViolation, finding
from permits.models import LevelFact, LevelResult, PermitType

HOT_WORK_ORDER = ("2", "1", "special")
HEIGHT_ORDER = ("I", "II", "III", "IV")

#: GB 30871 8.1.2: the nine objective hazard factors.
HEIGHT_FACTORS = frozenset(
    {
        "gusts_force5",
        "cold_5c",
        "water_cold_12c",
        "slippery",
        "poor_light",
        "near_live_conductors",
        "swaying_footing",
        "toxic_or_low_o2",
        "disaster_rescue",
    }
)


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """A site's clock: time zone, night hours, public holidays and rest days."""

    tz: ZoneInfo
    night_start: dt.time
    night_end: dt.time
    country: str = "CN"
    extra_rest_days: frozenset[dt.date] = frozenset()
    extra_work_days: frozenset[dt.date] = frozenset()

    @classmethod
    def from_settings(cls, settings: PermitSettings, tz: str | None = None) -> WorkCalendar:
        return cls(
            tz=ZoneInfo(tz or settings.timezone),
            night_start=settings.night_start,
            night_end=settings.night_end,
            country=settings.holiday_calendar,
            extra_rest_days=frozenset(settings.extra_rest_days),
            extra_work_days=frozenset(settings.extra_work_days),
        )

    def day_kind(self, day: dt.date) -> tuple[str, str] | None:
        """('holiday', name) or ('rest_day', why) for a non-working day, else None."""
        if day in self.extra_work_days:
            return None
        if day in self.extra_rest_days:
            return ("rest_day", "company rest day")
        cal = _country_calendar(self.country, day.year)
        name = cal.get(day)
        if name:
            return ("holiday", str(name))
        if not cal.is_working_day(day):
            return ("rest_day", day.strftime("%A"))
        return None

    def local_days(self, start: dt.datetime, end: dt.datetime) -> Iterator[dt.date]:
        first = start.astimezone(self.tz).date()
        last = (end - dt.timedelta(microseconds=1)).astimezone(self.tz).date()
        day = first
        while day <= last:
            yield day
            day += dt.timedelta(days=1)

    def night_overlap(self, start: dt.datetime, end: dt.datetime) -> dt.datetime | None:
        """The first local night start whose night overlaps ``[start, end)``, if any."""
        for day in self.local_days(start - dt.timedelta(days=1), end):
            n_start = dt.datetime.combine(day, self.night_start, self.tz)
            n_end_day = day + dt.timedelta(days=1) if self.night_end <= self.night_start else day
            n_end = dt.datetime.combine(n_end_day, self.night_end, self.tz)
            if n_start < end and n_end > start:
                return n_start
        return None


@functools.cache
def _country_calendar(country: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(country, years=year)


def _raise(order: tuple[str, ...], level: str, steps: int) -> str:
    return order[min(order.index(level) + steps, len(order) - 1)]


def hot_work_level(
    fields: Mapping[str, Any], start: dt.datetime, end: dt.datetime, cal: WorkCalendar
) -> LevelResult:
    """特级 / 一级 / 二级 from location, plant state and time (5.1.1-5.1.4, 5.2.15)."""
    facts: list[LevelFact] = []
    where = fields.get("location_class", "other")
    running = bool(fields.get("running_plant"))
    shut_down = bool(fields.get("unit_shut_down_purged"))
    if running and shut_down:
        raise RuleViolation(finding("hot_work.contradiction"))
    if fields.get("major_hazard_tank_dike"):
        level = "special"
        facts.append(LevelFact("major_hazard_tank_dike", True, "特级", "5.1.2"))
    elif fields.get("hot_tapping"):
        level = "special"
        facts.append(LevelFact("hot_tapping", True, "特级", "5.1.2"))
    elif where == "fire_explosion_area" and running:
        level = "special"
        facts.append(LevelFact("running_plant_in_fire_explosion_area", True, "特级", "5.1.2"))
    elif where == "fire_explosion_area" and shut_down:
        level = "2"
        facts.append(LevelFact("unit_shut_down_purged_isolated", True, "二级", "5.1.4"))
    elif where in ("fire_explosion_area", "pipe_rack"):
        level = "1"
        facts.append(LevelFact("location_class", where, "一级", "5.1.3"))
    else:
        level = "2"
        facts.append(LevelFact("location_class", where, "二级", "5.1.3"))
    daily = parse_daily_hours(fields.get("daily_hours"))
    if daily is not None:
        facts.append(LevelFact("daily_hours", fields["daily_hours"], "work only then", "5.1.1"))
    special = _special_times(start, end, cal, daily)
    if special:
        facts.extend(special)
        raised = _raise(HOT_WORK_ORDER, level, 1)
        facts.append(LevelFact("raised_for_special_time", level, f"→ {raised}", "5.1.1"))
        level = raised
    wind = int(fields.get("wind_force") or 0)
    if wind >= 5 and fields.get("outdoor", True):
        if not fields.get("wind_unavoidable"):
            raise RuleViolation(finding("hot_work.wind", wind_force=wind))
        raised = _raise(HOT_WORK_ORDER, level, 1)
        facts.append(LevelFact("wind_force", wind, f"→ {raised}", "5.2.15"))
        level = raised
    return LevelResult(level=level, facts=tuple(facts))


def parse_daily_hours(value: object) -> tuple[dt.time, dt.time] | None:
    """'HH:MM-HH:MM' (start before end, same day) → the two times; None when not given."""
    if value is None:
        return None
    try:
        a, b = str(value).split("-")
        t1, t2 = dt.time.fromisoformat(a.strip()), dt.time.fromisoformat(b.strip())
    except ValueError:
        t1 = t2 = dt.time(0)
    if t1 >= t2:
        raise RuleViolation(
            finding(
                "template.field_invalid",
                field="daily_hours",
                reason="expected HH:MM-HH:MM within one day",
                clause="5.1.1",
            )
        )
    return t1, t2


def work_windows(
    start: dt.datetime, end: dt.datetime, cal: WorkCalendar, daily: tuple[dt.time, dt.time] | None
) -> list[tuple[dt.datetime, dt.datetime]]:
    """When work may actually happen: the whole validity, or the declared daily hours in it."""
    if daily is None:
        return [(start, end)]
    out = []
    for day in cal.local_days(start, end):
        a = max(start, dt.datetime.combine(day, daily[0], cal.tz))
        b = min(end, dt.datetime.combine(day, daily[1], cal.tz))
        if a < b:
            out.append((a, b))
    return out


def _special_times(
    start: dt.datetime, end: dt.datetime, cal: WorkCalendar, daily: tuple[dt.time, dt.time] | None
) -> list[LevelFact]:
    facts: list[LevelFact] = []
    windows = work_windows(start, end, cal, daily)
    days = sorted({d for a, b in windows for d in cal.local_days(a, b)})
    for day in days:
        kind = cal.day_kind(day)
        if kind is not None:
            facts.append(LevelFact(kind[0], f"{day.isoformat()} {kind[1]}", "raise", "5.1.1"))
            break
    for a, b in windows:
        night = cal.night_overlap(a, b)
        if night is not None:
            span = f"{cal.night_start:%H:%M}-{cal.night_end:%H:%M} from {night.date().isoformat()}"
            facts.append(LevelFact("night", span, "raise", "5.1.1"))
            break
    return facts


def height_level(fields: Mapping[str, Any]) -> LevelResult:
    """Ⅰ-Ⅳ from the height band, one up with any objective factor (8.1.2, 8.1.3)."""
    h = float(fields["height_m"])
    if h < 2.0:
        raise RuleViolation(finding("scope.height_below_2m", height_m=h))
    if h <= 5.0:
        level, band = "I", "2-5 m"
    elif h <= 15.0:
        level, band = "II", "5-15 m"
    elif h <= 30.0:
        level, band = "III", "15-30 m"
    else:
        level, band = "IV", "> 30 m"
    facts = [LevelFact("height_m", h, f"{band} → {level}", "8.1.3")]
    factors = sorted(set(fields.get("factors") or ()))
    if factors:
        raised = _raise(HEIGHT_ORDER, level, 1)
        facts.append(LevelFact("objective_factors", factors, f"→ {raised}", "8.1.2"))
        level = raised
    return LevelResult(level=level, facts=tuple(facts))


def lifting_level(fields: Mapping[str, Any]) -> LevelResult:
    """一级 > 100 t, 二级 40-100 t, 三级 < 40 t (9.1); < 10 t permit optional (B.1 note 3)."""
    m = float(fields["mass_t"])
    if m > 100.0:
        level = "1"
    elif m >= 40.0:
        level = "2"
    else:
        level = "3"
    facts = [LevelFact("mass_t", m, f"→ {level}", "9.1")]
    if m < 10.0:
        facts.append(LevelFact("mass_below_10t", m, "permit optional; risk analysis", "B.1"))
        return LevelResult(
            level=level,
            facts=tuple(facts),
            permit_required=False,
            notes=("B.1 note 3: a lift under 10 t may skip the permit but needs a risk analysis",),
        )
    return LevelResult(level=level, facts=tuple(facts))


def compute_level(
    ptype: PermitType,
    fields: Mapping[str, Any],
    start: dt.datetime,
    end: dt.datetime,
    cal: WorkCalendar,
) -> LevelResult:
    """The level of a permit of ``ptype`` with these fields over ``[start, end)``."""
    if ptype is PermitType.DH:
        return hot_work_level(fields, start, end, cal)
    if ptype is PermitType.GC:
        return height_level(fields)
    if ptype is PermitType.DZ:
        return lifting_level(fields)
    if ptype is PermitType.DT:
        depth = float(fields["depth_m"])
        if depth <= 0.5:
            raise RuleViolation(finding("scope.excavation_shallow", depth_m=depth))
        facts = [LevelFact("depth_m", depth, "excavation (> 0.5 m)", "3.11")]
        if depth > 1.2 and fields.get("near_flammable_toxic_lines"):
            facts.append(LevelFact("deep_near_lines", depth, "confined-space rules", "11.10"))
        return LevelResult(level=None, facts=tuple(facts))
    return LevelResult(level=None, facts=())


def validity_cap(
    ptype: PermitType, level: str | None, fields: Mapping[str, Any], settings: PermitSettings
) -> tuple[dt.timedelta, str]:
    """The longest validity and the clause (or policy) that sets it."""
    hours: float
    if ptype is PermitType.DH:
        hours, clause = (72.0 if level == "2" else 8.0), "5.1.5"
    elif ptype is PermitType.SX:
        hours, clause = 24.0, "6.10"
    elif ptype is PermitType.GC:
        hours, clause = 7 * 24.0, "8.2.11"
    elif ptype is PermitType.YD:
        special = bool(str(fields.get("special_case_reason") or "").strip())
        hours, clause = (30 if special else 15) * 24.0, "10.8"
    else:
        hours = settings.unspecified_validity_h.get(str(ptype), 24.0)
        clause = "n/s: company policy"
    return dt.timedelta(hours=hours), clause


def gas_interruption_limit(ptype: PermitType, level: str | None) -> dt.timedelta | None:
    """A pause longer than this needs a gas re-test (5.3: 30 min 特级/一级, 60 min 二级;
    6.5: confined space 60 min); None: the type has no such rule."""
    if ptype is PermitType.DH:
        return dt.timedelta(minutes=60 if level == "2" else 30)
    if ptype in (PermitType.SX, PermitType.DT):
        return dt.timedelta(minutes=60)
    return None


def continuous_monitoring(ptype: PermitType, level: str | None, fields: Mapping[str, Any]) -> bool:
    """特级 hot work and confined spaces (incl. deep excavation near lines, 11.10) are
    monitored continuously and expect readings every 2 h (5.3, 6.4)."""
    if ptype is PermitType.DH:
        return level == "special"
    if ptype is PermitType.SX:
        return True
    if ptype is PermitType.DT:
        return float(fields.get("depth_m") or 0) > 1.2 and bool(
            fields.get("near_flammable_toxic_lines")
        )
    return False
