"""Pure pre-start checks shared by activation and resumption: each returns its findings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence

from permits.config import PermitSettings
from permits.errors import finding
from permits.levels import WorkCalendar, gas_interruption_limit, parse_daily_hours
from permits.models import CheckIn, Finding, GasTest, Permit, PermitType, SuspendReason
from permits.schemas import Conditions
from permits.templates import EvidenceStep, Template


def _minutes(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 60.0, 1)


def validity_window(p: Permit, now: dt.datetime, settings: PermitSettings) -> list[Finding]:
    """Work starts no earlier than the planned start (less the tolerance) and before the end."""
    early = p.planned_start - dt.timedelta(minutes=settings.start_tolerance_min)
    if now < early:
        return [finding("validity.not_yet", start=p.planned_start.isoformat())]
    if now >= p.planned_end:
        return [finding("validity.elapsed", end=p.planned_end.isoformat())]
    return []


def work_hours(p: Permit, now: dt.datetime, cal: WorkCalendar) -> list[Finding]:
    """Hot work whose level was computed for declared daily hours runs only in them (5.1.1):
    working outside them would be night or rest-day work the level did not account for."""
    daily = parse_daily_hours(p.fields.get("daily_hours")) if p.type is PermitType.DH else None
    if daily is None:
        return []
    local = now.astimezone(cal.tz).time()
    if daily[0] <= local < daily[1]:
        return []
    return [finding("hot_work.outside_hours", hours=str(p.fields["daily_hours"]))]


def measures(
    template: Template, p: Permit, confirmed: Collection[str], *, resuming: bool
) -> list[Finding]:
    """Every safety measure of the permit confirmed on site (8.2.11 for height on resume)."""
    missing = [m for m in p.measures if m not in set(confirmed)]
    if not missing:
        return []
    if resuming and p.type is PermitType.GC:
        return [finding("resume.reconfirm")]
    return [finding("measures.unconfirmed", missing=", ".join(missing))]


def weather(p: Permit, conditions: Conditions | None) -> list[Finding]:
    """Weather stops: height (8.2.6), outdoor lifting (9.2.4), outdoor hot work (5.2.15)."""
    outdoor = bool(p.fields.get("outdoor", True))
    needs = p.type is PermitType.GC or (p.type in (PermitType.DZ, PermitType.DH) and outdoor)
    if not needs:
        return []
    clause = {PermitType.GC: "8.2.6", PermitType.DZ: "9.2.4", PermitType.DH: "5.2.15"}[p.type]
    if conditions is None:
        return [finding("weather.unknown", clause=clause)]
    c = conditions
    if p.type is PermitType.GC and (c.wind_force >= 5 or c.dense_fog):
        return [finding("weather.height")]
    if p.type is PermitType.DZ and (
        c.wind_force >= 6 or c.heavy_snow or c.rainstorm or c.dense_fog
    ):
        return [finding("weather.lifting")]
    if p.type is PermitType.DH and c.wind_force >= 5 and not p.fields.get("wind_unavoidable"):
        return [finding("weather.hot_work", wind_force=c.wind_force)]
    return []


def gas(
    p: Permit,
    last: GasTest | None,
    now: dt.datetime,
    settings: PermitSettings,
    clause: str,
    *,
    since: dt.datetime | None = None,
    why: str = "",
) -> list[Finding]:
    """The last test passes and is no older than the window; with ``since`` (a re-test is
    due), it was also taken after ``since``."""
    if last is None:
        return [finding("gas.missing", clause=clause)]
    if since is not None and last.taken_at <= since:
        paused = _minutes(now - since)
        return [finding("gas.retest", paused_min=paused, why=why, clause=clause)]
    if not last.passed:
        reasons = "; ".join(f.rule for f in last.failures)
        return [finding("gas.failed", reasons=reasons, clause=clause)]
    age = now - last.taken_at
    if age > dt.timedelta(minutes=settings.gas_window_min):
        return [
            finding(
                "gas.stale", age_min=_minutes(age), limit_min=settings.gas_window_min, clause=clause
            )
        ]
    return []


def retest_reason(p: Permit, now: dt.datetime, cal: WorkCalendar) -> str | None:
    """Why a suspended permit needs a new gas test before resuming, or None (5.3, 6.5)."""
    assert p.suspended_at is not None
    if p.suspend_reason in (SuspendReason.GAS_ALARM, SuspendReason.DANGER):
        return str(p.suspend_reason)
    limit = gas_interruption_limit(p.type, p.level)
    if limit is not None and now - p.suspended_at > limit:
        return f"paused > {_minutes(limit):g} min"
    if p.type is PermitType.DH and (
        now.astimezone(cal.tz).date() != p.suspended_at.astimezone(cal.tz).date()
    ):
        return "new day"
    return None


def checkin(
    p: Permit,
    last: CheckIn | None,
    now: dt.datetime,
    settings: PermitSettings,
    *,
    since: dt.datetime | None = None,
) -> list[Finding]:
    """The watcher checked in at the work point (or an approver overrode a distant
    check-in), recently enough, and after ``since`` when given (4.10)."""
    if last is None:
        return [finding("checkin.missing")]
    if since is not None and last.at <= since:
        return [finding("resume.watcher_back")]
    if not last.within and last.override_by is None:
        return [
            finding(
                "checkin.too_far",
                distance_m=round(last.distance_m, 1),
                limit_m=settings.checkin_radius_m,
            )
        ]
    age = now - last.at
    if age > dt.timedelta(minutes=settings.checkin_max_age_min):
        return [
            finding("checkin.stale", age_min=_minutes(age), limit_min=settings.checkin_max_age_min)
        ]
    return []


def photos(
    steps: Sequence[EvidenceStep], counts: Mapping[str, int], need_photos: int
) -> list[Finding]:
    """Each step has its files: ``need_photos`` distinct photos, or one document."""
    out = []
    for s in steps:
        need = need_photos if s.kind == "photo" else 1
        have = counts.get(s.id, 0)
        if have < need:
            if s.kind == "document":
                rule = {
                    "jsa": "evidence.jsa_required",
                    "lift_plan": "evidence.lift_plan_required",
                    "risk_analysis": "evidence.risk_analysis_required",
                }.get(s.id, "evidence.photos")
                out.append(finding(rule, step=s.id, need=need, have=have))
            else:
                out.append(finding("evidence.photos", step=s.id, need=need, have=have))
    return out
