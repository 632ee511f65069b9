"""Permit use cases: each is one transaction that checks the rules, moves the state along the
transition table, records an event for the rule engine and appends to the audit trail.

Refused attempts that matter (approvals, activation, resumption) are written to the trail
and, where someone broke a rule, to the violations table in a transaction of their own, so
the refusal itself is on record.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from psycopg_pool import AsyncConnectionPool

from permits import _checks, audit, conflicts, gas, geo, kpis, routes, workflow
from permits import repository as repo
from permits.certificates import CertificateClaim, CertificateVerifier, VerificationReport
from permits.certificates import from_settings as verifier_from_settings
from permits.config import PermitSettings
from permits.errors import (
    ConflictDetected,
    InvalidTransition,
    NotAuthorized,
    PermitNotFound,
    RuleViolation,
    SeparationOfDuties,
    UnknownActor,
    finding,
)
from permits.evidence import EvidenceStore, inspect
from permits.levels import (
    WorkCalendar,
    compute_level,
    continuous_monitoring,
    validity_cap,
)
from permits.models import (
    ENDED_STATES,
    TIMED_STATES,
    Actor,
    Approval,
    CheckIn,
    Decision,
    Evidence,
    EvidencePhase,
    Finding,
    GasReading,
    GasTest,
    GeoPoint,
    LevelResult,
    Permit,
    PermitState,
    PermitType,
    PermitWorker,
    Role,
    StepKind,
    SuspendReason,
)
from permits.schemas import (
    CertificateCreate,
    Conditions,
    GasTestCreate,
    KpiRead,
    LevelPreview,
    PermitCreate,
)
from permits.templates import Catalog, Template, gas_required, load, validate_fields
from permits.timers import PermitScheduler, TickReport

log = logging.getLogger(__name__)
S = PermitState

#: Who may suspend or terminate besides the permit's own watcher (4.10 e/f; SPEC §5).
STOP_ROLES = (
    Role.POST_LEADER,
    Role.SAFETY_DEPT,
    Role.LOCAL_UNIT,
    Role.SENIOR_LEADER,
    Role.SYSTEM,
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class PermitBundle:
    """A permit and everything recorded against it (for the detail view)."""

    permit: Permit
    template: Template
    route: tuple[routes.Step, ...]
    approvals: list[Approval]
    gas_tests: list[GasTest]
    checkins: list[CheckIn]
    evidence: list[Evidence]
    evidence_counts: dict[str, int]
    certificate_checks: list[dict[str, Any]]
    events: list[dict[str, Any]]


class PermitService:
    """The permit domain's use cases over a connection pool.

    Args:
        pool: the PostgreSQL pool (the runtime's).
        settings: company policy (`PermitSettings`).
        data_dir: evidence files go under ``data_dir/evidence``.
        verifier: the certificate verifier; default: the one the settings name.
        clock: the time source (UTC); tests pass their own.
        run_scheduler: start the expiry scheduler (default: ``settings.scheduler_enabled``).
    """

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        settings: PermitSettings,
        data_dir: Path,
        verifier: CertificateVerifier | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        run_scheduler: bool | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.catalog = catalog or load(settings.company_measures_file)
        self.store = EvidenceStore(data_dir / "evidence")
        self.clock = clock
        self._verifier = verifier
        self._run_scheduler = settings.scheduler_enabled if run_scheduler is None else run_scheduler
        self._stack = AsyncExitStack()
        self.scheduler: PermitScheduler | None = None

    # -- lifetime ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            if self._verifier is None:
                self._verifier = await self._stack.enter_async_context(
                    verifier_from_settings(self.settings.certificates)
                )
            if self._run_scheduler:
                self.scheduler = await self._stack.enter_async_context(
                    PermitScheduler(
                        tick=self.tick,
                        clock=self.clock,
                        interval_s=self.settings.scheduler_interval_s,
                    )
                )
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.__aexit__(et, e, tb)

    @property
    def verifier(self) -> CertificateVerifier:
        assert self._verifier is not None, "PermitService used outside `async with`"
        return self._verifier

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[repo.Conn]:
        async with self.pool.connection() as conn, conn.transaction():
            yield conn

    # -- identity -----------------------------------------------------------------------------

    async def actor(self, user_id: str | None) -> Actor:
        """The `Actor` behind a user id (the HTTP layer's identity hook)."""
        if not user_id:
            raise UnknownActor("(none)")
        async with self.pool.connection() as conn:
            found = await repo.get_actor(conn, user_id)
        if found is None:
            raise UnknownActor(user_id)
        return found

    def _require(self, actor: Actor, action: str, roles: Sequence[str]) -> None:
        if not routes.holds_any(actor, roles, self.settings):
            raise NotAuthorized(actor.user_id, action, [str(r) for r in roles])

    # -- shared steps -------------------------------------------------------------------------

    async def _load(self, conn: repo.Conn, permit_id: uuid.UUID, *, lock: bool = True) -> Permit:
        p = await repo.get_permit(conn, permit_id, lock=lock)
        if p is None:
            raise PermitNotFound(str(permit_id))
        return p

    async def _calendar(self, conn: repo.Conn, site_id: str) -> WorkCalendar:
        tz = await repo.site_timezone(conn, site_id)
        return WorkCalendar.from_settings(self.settings, tz)

    async def _trail(
        self,
        conn: repo.Conn,
        p: Permit,
        actor: Actor,
        action: str,
        at: dt.datetime,
        **data: Any,
    ) -> None:
        await audit.append(
            conn,
            at=at,
            actor=actor.user_id,
            action=action,
            permit_id=p.permit_id,
            data={"number": p.number, **data},
        )

    async def _move(
        self,
        conn: repo.Conn,
        p: Permit,
        to: PermitState,
        *,
        actor: Actor,
        at: dt.datetime,
        action: str,
        reason: str | None = None,
        data: dict[str, Any] | None = None,
        **columns: Any,
    ) -> None:
        """Change state along an edge of the table, with event and trail entry."""
        workflow.check(p.permit_id, p.state, to)
        await repo.update_permit(conn, p.permit_id, state=str(to), **columns)
        await repo.insert_event(
            conn,
            permit_id=p.permit_id,
            at=at,
            kind=action,
            actor=actor.user_id,
            from_state=str(p.state),
            to_state=str(to),
            reason=reason,
            data=data,
        )
        await self._trail(
            conn,
            p,
            actor,
            action,
            at,
            **{"from": str(p.state), "to": str(to)},
            reason=reason,
            **(data or {}),
        )

    async def _refuse(
        self,
        p: Permit,
        actor: Actor,
        action: str,
        error: RuleViolation | SeparationOfDuties,
        *,
        violators: Sequence[tuple[Finding, str | None, str | None]] = (),
    ) -> None:
        """Record a refused attempt (trail, violations) in its own transaction, then raise."""
        at = self.clock()
        async with self._tx() as conn:
            for f, user_id, worker_id in violators:
                await repo.insert_violation(
                    conn,
                    permit_id=p.permit_id,
                    at=at,
                    finding=f,
                    user_id=user_id,
                    worker_id=worker_id,
                )
            await self._trail(
                conn,
                p,
                actor,
                f"{action}.refused",
                at,
                findings=[{"rule": f.rule, "clause": f.clause, **f.params} for f in error.findings],
            )
        raise error

    # -- templates and levels -----------------------------------------------------------------

    def template(self, ptype: PermitType | str) -> Template:
        return self.catalog[ptype]

    async def preview_level(self, data: LevelPreview) -> tuple[LevelResult, dt.timedelta, str]:
        """The level the facts decide, the validity cap and its clause (no permit made)."""
        tpl = self.template(data.type)
        fields = validate_fields(tpl, data.fields)
        async with self.pool.connection() as conn:
            cal = (
                await self._calendar(conn, data.site_id)
                if data.site_id
                else WorkCalendar.from_settings(self.settings)
            )
        result = compute_level(data.type, fields, data.planned_start, data.planned_end, cal)
        cap, clause = validity_cap(data.type, result.level, fields, self.settings)
        return result, cap, clause

    # -- create and submit --------------------------------------------------------------------

    async def create(self, *, actor: Actor, data: PermitCreate) -> Permit:
        """A draft permit from a template; level, route and caps follow from the facts."""
        self._require(actor, "raise a permit", [Role.APPLICANT])
        now = self.clock()
        tpl = self.template(data.type)
        fields = validate_fields(tpl, data.fields)
        problems = self._window_problems(data, now)
        unknown = [a for a in data.activities if a not in self.catalog.activities]
        problems += [finding("template.unknown_item", kind="activity", item=a) for a in unknown]
        if problems:
            raise RuleViolation(*problems)
        async with self._tx() as conn:
            if await repo.site_timezone(conn, data.site_id) is None:
                raise RuleViolation(finding("site.unknown", site_id=data.site_id))
            cal = await self._calendar(conn, data.site_id)
            level = compute_level(data.type, fields, data.planned_start, data.planned_end, cal)
            self._check_cap(data, level, fields)
            await self._check_people(conn, tpl, data)
            host = await self._check_host(conn, data)
            number = await repo.next_number(conn)
            local = data.planned_start.astimezone(cal.tz)
            p = Permit(
                permit_id=uuid.uuid4(),
                number=f"{data.type}-{local:%Y%m%d}-{number:05d}",
                site_id=data.site_id,
                type=data.type,
                level=level.level,
                level_facts=level.facts,
                state=S.DRAFT,
                template_version=tpl.version,
                title=data.title,
                applicant=actor.user_id,
                watcher=data.watcher,
                workers=tuple(PermitWorker(w.worker_id, w.trade) for w in data.workers),
                location=GeoPoint(data.location.lat, data.location.lon),
                location_text=data.location_text,
                fields=fields,
                activities=tuple(sorted(set(data.activities))),
                risks=tuple([r.id for r in tpl.risks] + [f"extra:{r}" for r in data.extra_risks]),
                measures=tuple(m.id for m in tpl.measures),
                planned_start=data.planned_start,
                planned_end=data.planned_end,
                host_permit_id=host.permit_id if host else None,
                coordinator=data.coordinator,
                round=1,
                version=1,
                created_at=now,
            )
            await repo.insert_permit(conn, p)
            await repo.insert_event(
                conn,
                permit_id=p.permit_id,
                at=now,
                kind="created",
                actor=actor.user_id,
                to_state=str(S.DRAFT),
            )
            await self._trail(
                conn,
                p,
                actor,
                "create",
                now,
                type=str(p.type),
                level=p.level,
                level_facts=[f.fact for f in p.level_facts],
                template_version=p.template_version,
                planned_start=p.planned_start.isoformat(),
                planned_end=p.planned_end.isoformat(),
            )
        return p

    def _window_problems(self, data: PermitCreate, now: dt.datetime) -> list[Finding]:
        if data.planned_end <= data.planned_start:
            return [finding("validity.order")]
        if data.planned_start < now - dt.timedelta(minutes=self.settings.start_tolerance_min):
            return [finding("validity.start_past", start=data.planned_start.isoformat())]
        return []

    def _check_cap(self, data: PermitCreate, level: LevelResult, fields: dict[str, Any]) -> None:
        cap, clause = validity_cap(data.type, level.level, fields, self.settings)
        span = data.planned_end - data.planned_start
        if span > cap:
            raise RuleViolation(
                finding(
                    "validity.cap",
                    hours=round(span.total_seconds() / 3600, 3),
                    cap_h=round(cap.total_seconds() / 3600, 3),
                    type=str(data.type),
                    level=level.level or "",
                    clause=clause,
                )
            )

    async def _check_people(self, conn: repo.Conn, tpl: Template, data: PermitCreate) -> None:
        problems: list[Finding] = []
        watcher = await repo.get_actor(conn, data.watcher)
        if watcher is None or not routes.holds(watcher, Role.WATCHER, self.settings):
            problems.append(finding("watcher.required", user_id=data.watcher))
        ids = [w.worker_id for w in data.workers]
        known = await repo.known_workers(conn, ids)
        problems += [finding("workers.unknown", worker_id=w) for w in ids if w not in known]
        if data.watcher in ids:
            problems.append(finding("watcher.is_worker"))
        trades = {w.trade for w in data.workers if w.trade}
        problems += [
            finding("workers.trade_missing", trade=t)
            for t in tpl.required_trades
            if t not in trades
        ]
        unknown = sorted(t for t in trades if t not in self.catalog.trades)
        problems += [finding("template.unknown_item", kind="trade", item=t) for t in unknown]
        if data.coordinator and await repo.get_actor(conn, data.coordinator) is None:
            problems.append(finding("actor.unknown", user_id=data.coordinator))
        if problems:
            raise RuleViolation(*problems)

    async def _check_host(self, conn: repo.Conn, data: PermitCreate) -> Permit | None:
        if data.host_permit_id is None:
            if data.type is PermitType.YD:
                raise RuleViolation(finding("linked.host_required"))
            return None
        host = await repo.get_permit(conn, data.host_permit_id)
        if host is None:
            raise PermitNotFound(str(data.host_permit_id))
        if data.type is not PermitType.YD:
            raise RuleViolation(finding("template.unknown_field", field="host_permit_id"))
        if host.state in ENDED_STATES or host.state is S.SUSPENDED:
            raise RuleViolation(
                finding("linked.host_invalid", host=host.number, state=str(host.state))
            )
        if data.planned_end > host.planned_end:
            raise RuleViolation(finding("linked.host_ends_first", end=host.planned_end.isoformat()))
        return host

    async def submit(self, *, actor: Actor, permit_id: uuid.UUID) -> Permit:
        """The applicant submits the draft: its content is frozen from now on (4.18)."""
        now = self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            if actor.user_id != p.applicant:
                raise NotAuthorized(actor.user_id, "submit", [Role.APPLICANT])
            workflow.check(p.permit_id, p.state, S.SUBMITTED)
            if now >= p.planned_end:
                raise RuleViolation(finding("validity.elapsed", end=p.planned_end.isoformat()))
            tpl = self.template(p.type)
            docs = [s for s in tpl.steps_for(p.level, p.fields) if s.phase is EvidencePhase.SUBMIT]
            counts = await repo.evidence_counts(conn, p.permit_id)
            problems = _checks.photos(docs, counts, self.settings.photos_per_step)
            if problems:
                raise RuleViolation(*problems)
            await self._move(
                conn, p, S.SUBMITTED, actor=actor, at=now, action="submit", submitted_at=now
            )
        return await self.get(permit_id)

    # -- approval route -------------------------------------------------------------------------

    def route(self, p: Permit) -> tuple[routes.Step, ...]:
        return routes.route_for(p.type, p.level, self.settings)

    def route_of(self, ptype: PermitType, level: str | None) -> tuple[routes.Step, ...]:
        return routes.route_for(ptype, level, self.settings)

    def _sod(self, p: Permit, actor: Actor, signed: Sequence[Approval]) -> None:
        """Separation of duties: not a party to the permit, one step per route round."""
        if actor.user_id == p.applicant:
            raise SeparationOfDuties(
                finding("sod.own_permit", user_id=actor.user_id, relation="applicant")
            )
        if actor.user_id == p.watcher:
            raise SeparationOfDuties(
                finding("sod.own_permit", user_id=actor.user_id, relation="watcher")
            )
        mine = [a for a in signed if a.user_id == actor.user_id]
        if mine:
            raise SeparationOfDuties(
                finding("sod.two_steps", user_id=actor.user_id, step=mine[0].step)
            )

    def _pick_step(
        self, p: Permit, actor: Actor, signed: Sequence[Approval], step: int | None, action: str
    ) -> routes.Step:
        if p.state not in (S.SUBMITTED, S.IN_REVIEW):
            raise InvalidTransition(p.permit_id, p.state, S.APPROVED)
        route = self.route(p)
        open_steps = routes.pending(route, {a.step for a in signed})
        if not open_steps:
            raise RuleViolation(finding("approval.no_pending_step"))
        mine = [
            s
            for s in open_steps
            if routes.holds(actor, s.role, self.settings) and (step is None or s.no == step)
        ]
        if not mine:
            raise NotAuthorized(actor.user_id, action, sorted({s.role for s in open_steps}))
        return mine[0]

    async def approve(
        self,
        *,
        actor: Actor,
        permit_id: uuid.UUID,
        position: GeoPoint,
        comment: str = "",
        step: int | None = None,
    ) -> Permit:
        """Sign the next step of the route, on site (4.11). The final signature verifies the
        workers' certificates (report attached) and checks SIMOPS conflicts."""
        now = self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            signed = [
                a
                for a in await repo.approvals(conn, p.permit_id, p.round)
                if a.decision is Decision.APPROVED
            ]
            s = self._pick_step(p, actor, signed, step, "approve")
            try:
                self._sod(p, actor, signed)
            except SeparationOfDuties as exc:
                await self._refuse(p, actor, "approve", exc)
            distance = geo.distance_m(position, p.location)
            if distance > self.settings.checkin_radius_m:
                f = finding(
                    "approval.on_site",
                    distance_m=round(distance, 1),
                    limit_m=self.settings.checkin_radius_m,
                )
                await self._refuse(
                    p, actor, "approve", RuleViolation(f), violators=[(f, actor.user_id, None)]
                )
            if now >= p.planned_end:
                raise RuleViolation(finding("validity.elapsed", end=p.planned_end.isoformat()))
            final = s.kind is StepKind.APPROVE
            reports: list[VerificationReport] = []
            if final:
                await self._final_checks(conn, p, actor, now)
                reports = await self._verify_workers(conn, p, now, actor, "approve")
            approval = Approval(
                approval_id=0,
                permit_id=p.permit_id,
                round=p.round,
                step=s.no,
                role=s.role,
                kind=s.kind,
                decision=Decision.APPROVED,
                user_id=actor.user_id,
                signed_at=now,
                point=position,
                distance_m=distance,
                comment=comment,
            )
            approval_id = await repo.insert_approval(conn, approval)
            if reports:
                await repo.insert_certificate_checks(
                    conn, p.permit_id, "approval", reports, approval_id
                )
            data = {
                "step": s.no,
                "role": s.role,
                "kind": str(s.kind),
                "distance_m": round(distance, 1),
                "certificates": [f"{r.worker_id}:{r.trade}:{r.outcome}" for r in reports],
            }
            if final:
                await self._move(
                    conn,
                    p,
                    S.APPROVED,
                    actor=actor,
                    at=now,
                    action="approve",
                    data=data,
                    approved_at=now,
                )
            elif p.state is S.SUBMITTED:
                await self._move(
                    conn, p, S.IN_REVIEW, actor=actor, at=now, action="sign", data=data
                )
            else:
                await repo.update_permit(conn, p.permit_id)
                await self._trail(conn, p, actor, "sign", now, **data)
        return await self.get(permit_id)

    async def _final_checks(
        self, conn: repo.Conn, p: Permit, actor: Actor, now: dt.datetime
    ) -> None:
        found = conflicts.check(p, await repo.live_permits(conn, p.site_id), self.settings)
        if found:
            await self._refuse(p, actor, "approve", ConflictDetected(*found))

    async def _verify_workers(
        self, conn: repo.Conn, p: Permit, now: dt.datetime, actor: Actor, action: str
    ) -> list[VerificationReport]:
        """Verify each certified worker's certificate; any failure blocks (4.9)."""
        reports: list[VerificationReport] = []
        problems: list[tuple[Finding, str | None, str | None]] = []
        for w in p.workers:
            if not w.trade:
                continue
            claims = await repo.certificates_of(conn, w.worker_id, w.trade)
            if not claims:
                f = finding("certificate.missing", worker_id=w.worker_id, trade=w.trade)
                problems.append((f, None, w.worker_id))
                reports.append(_missing_report(w, now))
                continue
            report = await self.verifier.verify(claims[0], at=now)
            reports.append(report)
            if not report.ok:
                rule = (
                    "certificate.invalid"
                    if report.outcome == "invalid"
                    else "certificate.unverifiable"
                )
                f = finding(
                    rule,
                    worker_id=w.worker_id,
                    trade=w.trade,
                    number=report.number,
                    reason=report.reason,
                )
                problems.append((f, None, w.worker_id))
        if problems:
            phase = "approval" if action == "approve" else action
            async with self._tx() as side:
                await repo.insert_certificate_checks(side, p.permit_id, phase, reports)
            await self._refuse(
                p, actor, action, RuleViolation(*[f for f, _, _ in problems]), violators=problems
            )
        return reports

    async def reject(
        self, *, actor: Actor, permit_id: uuid.UUID, position: GeoPoint, reason: str
    ) -> Permit:
        """Return the permit to its applicant as a draft; the route starts over."""
        now = self.clock()
        if not reason.strip():
            raise RuleViolation(finding("approval.reason_required"))
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            signed = [
                a
                for a in await repo.approvals(conn, p.permit_id, p.round)
                if a.decision is Decision.APPROVED
            ]
            s = self._pick_step(p, actor, signed, None, "reject")
            self._sod(p, actor, signed)
            distance = geo.distance_m(position, p.location)
            await repo.insert_approval(
                conn,
                Approval(
                    approval_id=0,
                    permit_id=p.permit_id,
                    round=p.round,
                    step=s.no,
                    role=s.role,
                    kind=s.kind,
                    decision=Decision.REJECTED,
                    user_id=actor.user_id,
                    signed_at=now,
                    point=position,
                    distance_m=distance,
                    comment=reason,
                ),
            )
            await self._move(
                conn,
                p,
                S.DRAFT,
                actor=actor,
                at=now,
                action="reject",
                reason=reason,
                data={"step": s.no, "role": s.role},
                round=p.round + 1,
            )
        return await self.get(permit_id)

    # -- gas tests, check-in, evidence --------------------------------------------------------

    async def record_gas_test(
        self, *, actor: Actor, permit_id: uuid.UUID, data: GasTestCreate
    ) -> GasTest:
        """Record a gas analysis; a failed test on a running permit stops the work (5.2.6,
        6.5: any alarm → stop, evacuate, re-test)."""
        self._require(actor, "record a gas test", [Role.ANALYST])
        now = self.clock()
        taken = data.taken_at
        if taken > now + dt.timedelta(minutes=1):
            raise RuleViolation(finding("gas.in_future"))
        delay = now - taken
        limit = dt.timedelta(minutes=self.settings.gas_record_max_delay_min)
        if delay > limit:
            raise RuleViolation(
                finding(
                    "gas.backfilled",
                    age_min=round(delay.total_seconds() / 60, 1),
                    limit_min=self.settings.gas_record_max_delay_min,
                )
            )
        readings = tuple(GasReading(r.substance, r.value, r.unit, r.lel_pct) for r in data.readings)
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            if p.state not in TIMED_STATES:
                raise InvalidTransition(p.permit_id, p.state, "gas_test")
            rule = gas.rule_for(p.type, p.fields)
            failures = tuple(gas.evaluate(data.o2_pct, readings, rule))
            test = GasTest(
                test_id=0,
                permit_id=p.permit_id,
                taken_at=min(taken, now),
                point=data.point,
                analyst=actor.user_id,
                o2_pct=data.o2_pct,
                readings=readings,
                passed=not failures,
                failures=failures,
                recorded_at=now,
            )
            pos = GeoPoint(data.position.lat, data.position.lon) if data.position else None
            test = replace(test, test_id=await repo.insert_gas_test(conn, test, pos))
            await repo.update_permit(conn, p.permit_id, gas_overdue_flagged_at=None)
            await self._trail(
                conn,
                p,
                actor,
                "gas_test",
                now,
                test_id=test.test_id,
                taken_at=taken.isoformat(),
                passed=test.passed,
                failures=[f.rule for f in failures],
            )
            if failures and p.state is S.ACTIVE:
                await self._move(
                    conn,
                    p,
                    S.SUSPENDED,
                    actor=actor,
                    at=now,
                    action="suspend",
                    reason="gas test failed",
                    data={"reason_kind": "gas_alarm"},
                    suspended_at=now,
                    suspend_reason=str(SuspendReason.GAS_ALARM),
                )
        return test

    async def check_in(
        self,
        *,
        actor: Actor,
        permit_id: uuid.UUID,
        position: GeoPoint,
        accuracy_m: float | None,
    ) -> CheckIn:
        """The watcher's GPS check-in at the work point. Farther than the radius: recorded
        with a violation, and activation stays blocked until an approver overrides it."""
        now = self.clock()
        if accuracy_m is not None and accuracy_m > self.settings.checkin_max_accuracy_m:
            raise RuleViolation(
                finding(
                    "checkin.accuracy",
                    accuracy_m=accuracy_m,
                    limit_m=self.settings.checkin_max_accuracy_m,
                )
            )
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            if actor.user_id != p.watcher:
                raise RuleViolation(finding("checkin.watcher_only"))
            if p.state not in TIMED_STATES:
                raise InvalidTransition(p.permit_id, p.state, "check_in")
            distance = geo.distance_m(position, p.location)
            within = distance <= self.settings.checkin_radius_m
            c = CheckIn(
                checkin_id=0,
                permit_id=p.permit_id,
                user_id=actor.user_id,
                at=now,
                point=position,
                accuracy_m=accuracy_m,
                distance_m=distance,
                within=within,
            )
            c = replace(c, checkin_id=await repo.insert_checkin(conn, c))
            if not within:
                f = finding(
                    "checkin.too_far",
                    distance_m=round(distance, 1),
                    limit_m=self.settings.checkin_radius_m,
                )
                await repo.insert_violation(
                    conn, permit_id=p.permit_id, at=now, finding=f, user_id=actor.user_id
                )
                await repo.insert_event(
                    conn,
                    permit_id=p.permit_id,
                    at=now,
                    kind="checkin_too_far",
                    actor=actor.user_id,
                    data={"distance_m": round(distance, 1)},
                )
            await self._trail(
                conn,
                p,
                actor,
                "check_in",
                now,
                checkin_id=c.checkin_id,
                distance_m=round(distance, 1),
                within=within,
            )
        return c

    async def override_check_in(
        self, *, actor: Actor, permit_id: uuid.UUID, checkin_id: int, reason: str
    ) -> CheckIn:
        """An approver of this permit's route lets a distant check-in count, with a reason."""
        now = self.clock()
        if not reason.strip():
            raise RuleViolation(finding("checkin.override_reason"))
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            self._require(actor, "override a check-in", sorted({s.role for s in self.route(p)}))
            if p.party(actor.user_id):
                raise SeparationOfDuties(
                    finding(
                        "sod.own_permit",
                        user_id=actor.user_id,
                        relation="watcher" if actor.user_id == p.watcher else "applicant",
                    )
                )
            c = await repo.get_checkin(conn, p.permit_id, checkin_id)
            if c is None:
                raise PermitNotFound(f"check-in {checkin_id}")
            if c.within:
                raise RuleViolation(finding("checkin.not_far"))
            await repo.override_checkin(conn, checkin_id, by=actor.user_id, reason=reason, at=now)
            await self._trail(
                conn,
                p,
                actor,
                "check_in.override",
                now,
                checkin_id=checkin_id,
                distance_m=round(c.distance_m, 1),
                reason=reason,
            )
        return replace(c, override_by=actor.user_id, override_reason=reason)

    async def add_evidence(
        self,
        *,
        actor: Actor,
        permit_id: uuid.UUID,
        step: str,
        content: bytes,
        position: GeoPoint | None = None,
        taken_at: dt.datetime | None = None,
    ) -> Evidence:
        """Store a file for a required step (content-addressed), bound to time, place and
        uploader; its hash goes into the trail."""
        now = self.clock()
        async with self.pool.connection() as conn:
            p = await self._load(conn, permit_id, lock=False)
            cal = await self._calendar(conn, p.site_id)
        tpl = self.template(p.type)
        spec = next((s for s in tpl.steps_for(p.level, p.fields) if s.id == step), None)
        if spec is None:
            raise RuleViolation(finding("evidence.step_unknown", step=step))
        self._evidence_state(p, spec.phase)
        facts = inspect(
            content,
            kind=spec.kind,
            step=step,
            max_bytes=self.settings.evidence_max_bytes,
            tz=cal.tz,
        )
        self.store.put(facts.sha256, content)
        point, source = (position, "upload") if position else (facts.exif_point, "exif")
        if point is None:
            source = "none"
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            self._evidence_state(p, spec.phase)
            e = await repo.insert_evidence(
                conn,
                Evidence(
                    evidence_id=0,
                    permit_id=p.permit_id,
                    step=step,
                    sha256=facts.sha256,
                    content_type=facts.content_type,
                    size=facts.size,
                    uploaded_by=actor.user_id,
                    uploaded_at=now,
                    taken_at=taken_at or facts.exif_time,
                    point=point,
                    place_source=source,
                ),
            )
            await self._trail(
                conn,
                p,
                actor,
                "evidence",
                now,
                step=step,
                sha256=facts.sha256,
                content_type=facts.content_type,
                size=facts.size,
                place_source=source,
            )
        return e

    def _evidence_state(self, p: Permit, phase: EvidencePhase) -> None:
        ok = {
            EvidencePhase.SUBMIT: {S.DRAFT},
            EvidencePhase.PRE_START: {S.DRAFT, S.SUBMITTED, S.IN_REVIEW, S.APPROVED, S.SUSPENDED},
            EvidencePhase.CLOSURE: {S.ACTIVE, S.SUSPENDED, S.EXPIRED, S.TERMINATED},
        }[phase]
        if p.state not in ok:
            if phase is EvidencePhase.SUBMIT:
                raise RuleViolation(finding("content.locked"))
            raise InvalidTransition(p.permit_id, p.state, f"evidence:{phase}")

    # -- start, stop, resume ------------------------------------------------------------------

    def _starter_roles(self, p: Permit, actor: Actor) -> None:
        """Hot work starts after the on-shift post leader checks the ticket; other work
        starts with the post leader or the permit's own watcher."""
        if routes.holds(actor, Role.POST_LEADER, self.settings):
            return
        if p.type is not PermitType.DH and actor.user_id == p.watcher:
            return
        roles = [Role.POST_LEADER] if p.type is PermitType.DH else [Role.POST_LEADER, Role.WATCHER]
        raise NotAuthorized(actor.user_id, "start work", roles)

    async def activate(
        self,
        *,
        actor: Actor,
        permit_id: uuid.UUID,
        confirmed_measures: Collection[str],
        conditions: Conditions | None,
    ) -> Permit:
        """Start work after the pre-start checks: validity, measures, weather, gas test,
        watcher check-in, photos, certificates, linked permit, conflicts and SIMOPS."""
        now = self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            if p.state is not S.APPROVED:
                raise InvalidTransition(p.permit_id, p.state, S.ACTIVE)
            self._starter_roles(p, actor)
            tpl = self.template(p.type)
            cal = await self._calendar(conn, p.site_id)
            problems = _checks.validity_window(p, now, self.settings)
            problems += _checks.work_hours(p, now, cal)
            problems += _checks.measures(tpl, p, confirmed_measures, resuming=False)
            problems += _checks.weather(p, conditions)
            if gas_required(tpl, p.fields):
                last = await repo.last_gas_test(conn, p.permit_id)
                clause = gas.rule_for(p.type, p.fields).clause
                problems += _checks.gas(p, last, now, self.settings, clause)
            last_in = await repo.last_checkin(conn, p.permit_id, p.watcher)
            problems += _checks.checkin(p, last_in, now, self.settings)
            steps = [
                s for s in tpl.steps_for(p.level, p.fields) if s.phase is EvidencePhase.PRE_START
            ]
            counts = await repo.evidence_counts(conn, p.permit_id)
            problems += _checks.photos(steps, counts, self.settings.photos_per_step)
            problems += await self._host_problems(conn, p)
            problems += await self._unfit(conn, p)
            if problems:
                await self._refuse(p, actor, "activate", RuleViolation(*problems))
            await self._simops(conn, p, actor, "activate")
            reports = await self._verify_workers(conn, p, now, actor, "activation")
            await repo.insert_certificate_checks(conn, p.permit_id, "activation", reports)
            await self._move(
                conn,
                p,
                S.ACTIVE,
                actor=actor,
                at=now,
                action="activate",
                activated_at=now,
                data={"conditions": conditions.model_dump() if conditions else None},
            )
        return await self.get(permit_id)

    async def _host_problems(self, conn: repo.Conn, p: Permit) -> list[Finding]:
        if p.host_permit_id is None:
            return []
        host = await repo.get_permit(conn, p.host_permit_id)
        assert host is not None
        if host.state not in (S.APPROVED, S.ACTIVE):
            return [finding("linked.host_invalid", host=host.number, state=str(host.state))]
        return []

    async def _simops(self, conn: repo.Conn, p: Permit, actor: Actor, action: str) -> None:
        others = await repo.live_permits(conn, p.site_id)
        found = conflicts.check(p, others, self.settings)
        coordinator = conflicts.simops(p, others, self.settings)
        if coordinator is not None:
            found.append(coordinator)
        if found:
            await self._refuse(p, actor, action, ConflictDetected(*found))

    async def suspend(
        self,
        *,
        actor: Actor,
        permit_id: uuid.UUID,
        reason_kind: SuspendReason,
        reason: str,
    ) -> Permit:
        """Stop work and take the permit back (4.8, 4.10 e/f); resuming needs re-checks."""
        now = self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            if actor.user_id != p.watcher:
                self._require(actor, "suspend", [*STOP_ROLES, *(s.role for s in self.route(p))])
            await self._move(
                conn,
                p,
                S.SUSPENDED,
                actor=actor,
                at=now,
                action="suspend",
                reason=reason,
                data={"reason_kind": str(reason_kind)},
                suspended_at=now,
                suspend_reason=str(reason_kind),
            )
        return await self.get(permit_id)

    async def resume(
        self,
        *,
        actor: Actor,
        permit_id: uuid.UUID,
        confirmed_measures: Collection[str],
        conditions: Conditions | None,
    ) -> Permit:
        """Restart after a suspension: re-confirmation on site, a gas re-test where the pause
        or its cause needs one (5.3, 6.5), the watcher back at the work point (4.10 f)."""
        now = self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            if p.state is not S.SUSPENDED:
                raise InvalidTransition(p.permit_id, p.state, S.ACTIVE)
            assert p.suspended_at is not None
            self._starter_roles(p, actor)
            tpl = self.template(p.type)
            cal = await self._calendar(conn, p.site_id)
            problems = _checks.validity_window(p, now, self.settings)
            problems += _checks.work_hours(p, now, cal)
            problems += _checks.measures(tpl, p, confirmed_measures, resuming=True)
            problems += _checks.weather(p, conditions)
            why = _checks.retest_reason(p, now, cal)
            if gas_required(tpl, p.fields) and why is not None:
                last = await repo.last_gas_test(conn, p.permit_id)
                clause = gas.rule_for(p.type, p.fields).clause
                problems += _checks.gas(
                    p, last, now, self.settings, clause, since=p.suspended_at, why=why
                )
            since = p.suspended_at if p.suspend_reason is SuspendReason.WATCHER_AWAY else None
            last_in = await repo.last_checkin(conn, p.permit_id, p.watcher)
            problems += _checks.checkin(p, last_in, now, self.settings, since=since)
            problems += await self._host_problems(conn, p)
            problems += await self._unfit(conn, p)
            if problems:
                await self._refuse(p, actor, "resume", RuleViolation(*problems))
            await self._simops(conn, p, actor, "resume")
            reports = await self._verify_workers(conn, p, now, actor, "resume")
            await repo.insert_certificate_checks(conn, p.permit_id, "resume", reports)
            await self._move(
                conn,
                p,
                S.ACTIVE,
                actor=actor,
                at=now,
                action="resume",
                suspended_at=None,
                suspend_reason=None,
                data={
                    "paused_min": round((now - p.suspended_at).total_seconds() / 60, 1),
                    "gas_retest": why,
                },
            )
        return await self.get(permit_id)

    # -- completion and closure ---------------------------------------------------------------

    def _closure_problems(
        self, p: Permit, checks: Collection[str], counts: dict[str, int]
    ) -> list[Finding]:
        tpl = self.template(p.type)
        missing = [c.id for c in tpl.closure_checks if c.id not in set(checks)]
        problems = [finding("closure.unconfirmed", missing=", ".join(missing))] if missing else []
        steps = [s for s in tpl.steps_for(p.level, p.fields) if s.phase is EvidencePhase.CLOSURE]
        return problems + _checks.photos(steps, counts, self.settings.photos_per_step)

    async def complete(
        self,
        *,
        actor: Actor,
        permit_id: uuid.UUID,
        closure_checks: Collection[str],
        position: GeoPoint,
    ) -> Permit:
        """Completion acceptance signed on site (4.15): closure checks and photos."""
        now = self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            workflow.check(p.permit_id, p.state, S.COMPLETED)
            final = self.route(p)[-1].role
            self._require(actor, "accept completion", sorted({Role.LOCAL_UNIT, final}))
            if actor.user_id == p.applicant:
                raise SeparationOfDuties(finding("sod.acceptance"))
            distance = geo.distance_m(position, p.location)
            problems = self._closure_problems(
                p, closure_checks, await repo.evidence_counts(conn, p.permit_id)
            )
            if distance > self.settings.checkin_radius_m:
                problems.append(
                    finding(
                        "approval.on_site",
                        distance_m=round(distance, 1),
                        limit_m=self.settings.checkin_radius_m,
                    )
                )
            if problems:
                raise RuleViolation(*problems)
            await self._move(
                conn,
                p,
                S.COMPLETED,
                actor=actor,
                at=now,
                action="complete",
                completed_at=now,
                data={"closure_checks": sorted(closure_checks), "distance_m": round(distance, 1)},
            )
            await self._end_hosted(conn, p, now)
        return await self.get(permit_id)

    async def close(
        self, *, actor: Actor, permit_id: uuid.UUID, closure_checks: Collection[str] = ()
    ) -> Permit:
        """Close the file. Temporary electricity is closed by the power-distribution unit;
        an expired or terminated permit needs its closure checks and photos first."""
        now = self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            workflow.check(p.permit_id, p.state, S.CLOSED)
            if p.type is PermitType.YD:
                if not routes.holds(actor, Role.POWER_UNIT, self.settings):
                    raise RuleViolation(finding("closure.role"))
            else:
                self._require(actor, "close", [Role.LOCAL_UNIT, self.route(p)[-1].role])
            if p.state is not S.COMPLETED:
                problems = self._closure_problems(
                    p, closure_checks, await repo.evidence_counts(conn, p.permit_id)
                )
                if problems:
                    raise RuleViolation(*problems)
            await self._move(conn, p, S.CLOSED, actor=actor, at=now, action="close", closed_at=now)
        return await self.get(permit_id)

    async def cancel(self, *, actor: Actor, permit_id: uuid.UUID, reason: str) -> Permit:
        """Withdraw a permit that has not started (its applicant or an approver)."""
        now = self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            if actor.user_id != p.applicant:
                self._require(actor, "cancel", sorted({s.role for s in self.route(p)}))
            await self._move(
                conn,
                p,
                S.CANCELLED,
                actor=actor,
                at=now,
                action="cancel",
                reason=reason,
                ended_at=now,
                end_reason=reason,
            )
            await self._end_hosted(conn, p, now)
        return await self.get(permit_id)

    async def terminate(self, *, actor: Actor, permit_id: uuid.UUID, reason: str) -> Permit:
        """Stop a permit for good (rule engine, safety department, post leader)."""
        now = self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            self._require(actor, "terminate", list(STOP_ROLES))
            await self._move(
                conn,
                p,
                S.TERMINATED,
                actor=actor,
                at=now,
                action="terminate",
                reason=reason,
                ended_at=now,
                end_reason=reason,
                data={"command_devices": True},
            )
            await self._end_hosted(conn, p, now)
        return await self.get(permit_id)

    async def _unfit(self, conn: repo.Conn, p: Permit) -> list[Finding]:
        """Workers on mandatory rest cannot be put on an active permit (4.9; SPEC §5)."""
        unfit = await repo.unfit_workers(conn, [w.worker_id for w in p.workers])
        return [finding("worker.unfit", worker_id=w, reason=r) for w, r in unfit]

    async def _end_hosted(self, conn: repo.Conn, host: Permit, now: dt.datetime) -> list[str]:
        """Temporary electricity ends with the permit it feeds (10.8)."""
        ended = []
        system = Actor.system()
        for child in await repo.hosted_permits(conn, host.permit_id):
            reason = f"host {host.number} ended"
            await self._move(
                conn,
                child,
                S.TERMINATED,
                actor=system,
                at=now,
                action="terminate",
                reason=reason,
                ended_at=now,
                end_reason=reason,
                data={
                    "rule": "linked.host_ended",
                    "clause": "10.8",
                    "host": host.number,
                    "command_devices": True,
                },
            )
            ended.append(child.number)
        return ended

    # -- scheduler ----------------------------------------------------------------------------

    async def tick(self, now: dt.datetime) -> TickReport:
        """One scheduler pass at ``now``: expire, flag due-soon, flag overdue gas readings."""
        report = TickReport()
        async with self.pool.connection() as conn:
            due = await repo.permits_to_expire(conn, now)
        for permit_id in due:
            await self._expire(permit_id, now, report)
        horizon = now + dt.timedelta(minutes=self.settings.due_soon_min)
        async with self.pool.connection() as conn:
            soon = await repo.permits_due_soon(conn, now, horizon)
        for permit_id in soon:
            async with self._tx() as conn:
                p = await self._load(conn, permit_id)
                await repo.update_permit(conn, permit_id, due_soon_flagged_at=now)
                left = round((p.planned_end - now).total_seconds() / 60, 1)
                await repo.insert_event(
                    conn,
                    permit_id=permit_id,
                    at=now,
                    kind="due_soon",
                    actor="system",
                    data={"minutes_left": left, "planned_end": p.planned_end.isoformat()},
                )
                await self._trail(conn, p, Actor.system(), "due_soon", now, minutes_left=left)
                report.due_soon.append(p.number)
        await self._gas_monitoring(now, report)
        return report

    async def _expire(self, permit_id: uuid.UUID, now: dt.datetime, report: TickReport) -> None:
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            if p.state not in TIMED_STATES or p.planned_end > now:
                return
            await self._move(
                conn,
                p,
                S.EXPIRED,
                actor=Actor.system(),
                at=now,
                action="expire",
                reason="validity elapsed",
                ended_at=now,
                end_reason="validity elapsed",
                data={
                    "planned_end": p.planned_end.isoformat(),
                    "was": str(p.state),
                    "command_devices": p.state is not S.APPROVED,
                },
            )
            report.expired.append(p.number)
            report.linked_ended += await self._end_hosted(conn, p, now)

    async def _gas_monitoring(self, now: dt.datetime, report: TickReport) -> None:
        limit = dt.timedelta(minutes=self.settings.gas_monitoring_interval_min)
        async with self.pool.connection() as conn:
            candidates = [
                p
                for p in await repo.active_permits(conn)
                if continuous_monitoring(p.type, p.level, p.fields)
            ]
        for cand in candidates:
            async with self._tx() as conn:
                p = await self._load(conn, cand.permit_id)
                last = await repo.last_gas_test(conn, p.permit_id)
                since = last.taken_at if last else p.activated_at
                assert since is not None
                row = await repo.events(conn, p.permit_id)
                flagged = any(
                    e["kind"] == "gas_monitoring_overdue" and e["at"] > since for e in row
                )
                if p.state is not S.ACTIVE or now - since <= limit or flagged:
                    continue
                age = round((now - since).total_seconds() / 60, 1)
                f = finding(
                    "gas.monitoring_overdue",
                    age_min=age,
                    limit_min=self.settings.gas_monitoring_interval_min,
                )
                await repo.update_permit(conn, p.permit_id, gas_overdue_flagged_at=now)
                await repo.insert_event(
                    conn,
                    permit_id=p.permit_id,
                    at=now,
                    kind="gas_monitoring_overdue",
                    actor="system",
                    data={"age_min": age, "clause": f.clause},
                )
                await self._trail(
                    conn, p, Actor.system(), "gas_monitoring_overdue", now, age_min=age
                )
                report.gas_overdue.append(p.number)

    async def record_alarm(
        self,
        *,
        permit_id: uuid.UUID,
        kind: str,
        severity: str,
        worker_id: str | None,
        at: dt.datetime | None = None,
    ) -> None:
        """An alarm raised during a permit (by the rule engine); counted in the KPIs."""
        at = at or self.clock()
        async with self._tx() as conn:
            p = await self._load(conn, permit_id)
            await repo.insert_event(
                conn,
                permit_id=p.permit_id,
                at=at,
                kind="alarm",
                actor="system",
                data={"alarm": kind, "severity": severity, "worker_id": worker_id},
            )
            await self._trail(
                conn,
                p,
                Actor.system(),
                "alarm",
                at,
                alarm=kind,
                severity=severity,
                worker_id=worker_id,
            )

    # -- certificates on file -----------------------------------------------------------------

    async def add_certificate(
        self, *, actor: Actor, worker_id: str, data: CertificateCreate
    ) -> CertificateClaim:
        """Put a worker's special-operation certificate on file (safety department)."""
        self._require(actor, "record certificates", [Role.SAFETY_DEPT, Role.ADMIN])
        if data.trade not in self.catalog.trades:
            raise RuleViolation(finding("template.unknown_item", kind="trade", item=data.trade))
        claim = CertificateClaim(
            worker_id=worker_id,
            trade=data.trade,
            number=data.number,
            issuer=data.issuer,
            valid_until=data.valid_until,
            review_due=data.review_due,
        )
        now = self.clock()
        async with self._tx() as conn:
            if not await repo.known_workers(conn, [worker_id]):
                raise RuleViolation(finding("workers.unknown", worker_id=worker_id))
            await repo.insert_certificate(conn, claim)
            await audit.append(
                conn,
                at=now,
                actor=actor.user_id,
                action="certificate",
                permit_id=None,
                data={
                    "worker_id": worker_id,
                    "trade": data.trade,
                    "number": data.number,
                    "valid_until": data.valid_until.isoformat(),
                },
            )
        return claim

    async def certificates(self, worker_id: str) -> list[CertificateClaim]:
        async with self.pool.connection() as conn:
            return await repo.all_certificates(conn, worker_id)

    # -- reads --------------------------------------------------------------------------------

    async def worker_site(self, worker_id: str) -> str | None:
        """The site a worker belongs to (None: unknown worker)."""
        async with self.pool.connection() as conn:
            return await repo.worker_site(conn, worker_id)

    async def get(self, permit_id: uuid.UUID) -> Permit:
        async with self.pool.connection() as conn:
            return await self._load(conn, permit_id, lock=False)

    async def bundle(self, permit_id: uuid.UUID) -> PermitBundle:
        async with self.pool.connection() as conn:
            p = await self._load(conn, permit_id, lock=False)
            return PermitBundle(
                permit=p,
                template=self.template(p.type),
                route=self.route(p),
                approvals=await repo.approvals(conn, p.permit_id),
                gas_tests=await repo.gas_tests(conn, p.permit_id),
                checkins=await repo.checkins(conn, p.permit_id),
                evidence=await repo.evidence_of(conn, p.permit_id),
                evidence_counts=await repo.evidence_counts(conn, p.permit_id),
                certificate_checks=await repo.certificate_checks(conn, p.permit_id),
                events=await repo.events(conn, p.permit_id),
            )

    async def search(self, f: repo.SearchFilter) -> list[Permit]:
        async with self.pool.connection() as conn:
            return await repo.search(conn, f)

    async def trail(self, **filters: Any) -> list[audit.AuditEntry]:
        async with self.pool.connection() as conn:
            return await audit.entries(conn, **filters)

    async def kpis(self, *, site_id: str | None, start: dt.datetime, end: dt.datetime) -> KpiRead:
        async with self.pool.connection() as conn:
            return await kpis.compute(conn, site_id=site_id, start=start, end=end, now=self.clock())

    async def verify_trail(self) -> audit.AuditReport:
        async with self.pool.connection() as conn:
            return await audit.verify(conn)


def _missing_report(w: PermitWorker, now: dt.datetime) -> VerificationReport:
    from permits.models import CertOutcome

    return VerificationReport(
        worker_id=w.worker_id,
        trade=w.trade or "",
        number="",
        outcome=CertOutcome.INVALID,
        reason="missing",
        source="file",
        checked_at=now,
    )
