"""The service enforces the GB 30871 rules at their boundaries (real PostgreSQL, set clock)."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from permits.errors import (
    ConflictDetected,
    InvalidTransition,
    NotAuthorized,
    RuleViolation,
    SeparationOfDuties,
)
from permits.models import EvidencePhase, PermitState, PermitType, SuspendReason
from permits.schemas import Conditions, GasReadingIn, GasTestCreate
from permits.service import PermitService
from tests.permits import factories as f

DH = PermitType.DH


def rules(exc: pytest.ExceptionInfo[RuleViolation]) -> set[str]:
    return {x.rule for x in exc.value.findings}


# -- validity caps (5.1.5, 6.10, 8.2.11, 10.8) -------------------------------------------------


async def test_create_hot_work_grade1_8h00_accepted(svc: PermitService) -> None:
    """一级 hot work may run exactly 8 h (5.1.5)."""
    p = await svc.create(actor=f.actor("app"), data=f.permit_create(DH, hours=8.0))
    assert (p.level, p.planned_end - p.planned_start) == ("1", dt.timedelta(hours=8))


async def test_create_hot_work_grade1_8h01_refused(svc: PermitService) -> None:
    """一级 hot work for 8 h 01 min exceeds the 8 h cap (5.1.5)."""
    with pytest.raises(RuleViolation) as exc:
        await svc.create(actor=f.actor("app"), data=f.permit_create(DH, hours=8 + 1 / 60))
    assert exc.value.rule == "validity.cap"
    assert exc.value.clause == "5.1.5"
    assert exc.value.findings[0].params["cap_h"] == 8.0


async def test_create_hot_work_grade2_72h_accepted_72h01_refused(svc: PermitService) -> None:
    """二级 hot work: 72 h (5.1.5), in declared daytime hours so no night raise applies."""
    fields = {"location_class": "other", "daily_hours": "08:00-18:00"}
    p = await svc.create(actor=f.actor("app"), data=f.permit_create(DH, hours=72, fields=fields))
    assert p.level == "2"
    with pytest.raises(RuleViolation, match="72"):
        await svc.create(
            actor=f.actor("app"), data=f.permit_create(DH, hours=72 + 1 / 60, fields=fields)
        )


@pytest.mark.parametrize(
    ("ptype", "cap_h", "clause"),
    [(PermitType.SX, 24, "6.10"), (PermitType.GC, 168, "8.2.11")],
)
async def test_create_cap_boundary_by_type(
    svc: PermitService, ptype: PermitType, cap_h: float, clause: str
) -> None:
    """Confined space 24 h (6.10), height 7 days (8.2.11): at the cap ok, one minute over not."""
    await svc.create(actor=f.actor("app"), data=f.permit_create(ptype, hours=cap_h))
    with pytest.raises(RuleViolation) as exc:
        await svc.create(actor=f.actor("app"), data=f.permit_create(ptype, hours=cap_h + 1 / 60))
    assert (exc.value.rule, exc.value.clause) == ("validity.cap", clause)


async def test_create_temporary_electricity_15_days_then_30_with_reason(
    svc: PermitService,
) -> None:
    """YD: 15 days, 30 in special cases (10.8); cannot outlast the permit it feeds."""
    host = await svc.create(
        actor=f.actor("app"),
        data=f.permit_create(PermitType.GC, hours=24 * 7),
    )
    with pytest.raises(RuleViolation) as exc:
        await svc.create(
            actor=f.actor("app"),
            data=f.permit_create(PermitType.YD, hours=24 * 7 + 1, host=host.permit_id),
        )
    assert exc.value.rule == "linked.host_ends_first"
    host30 = await svc.create(
        actor=f.actor("app2"), data=f.permit_create(PermitType.GC, hours=24 * 7)
    )
    with pytest.raises(RuleViolation, match="360"):
        await svc.create(
            actor=f.actor("app"),
            data=f.permit_create(PermitType.YD, hours=15 * 24 + 1, host=host30.permit_id),
        )


async def test_database_refuses_cap_breach_written_directly(
    svc: PermitService, seeded_url: str
) -> None:
    """The standard's caps are also constraints: raw SQL cannot lengthen a 一级 hot work."""
    p = await svc.create(actor=f.actor("app"), data=f.permit_create(DH, hours=8))
    with psycopg.connect(seeded_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "UPDATE permits SET planned_end = planned_end + interval '1 minute'"
            " WHERE permit_id = %s",
            (p.permit_id,),
        )


async def test_create_planned_start_in_past_refused(svc: PermitService, clock: f.Clock) -> None:
    """No filling in after the fact: a start older than the tolerance is refused (4.18)."""
    with pytest.raises(RuleViolation) as exc:
        await svc.create(
            actor=f.actor("app"),
            data=f.permit_create(DH, start=clock.now - dt.timedelta(minutes=16)),
        )
    assert exc.value.rule == "validity.start_past"


# -- level computed, not chosen -----------------------------------------------------------


async def test_create_level_raised_at_night_caps_8h(svc: PermitService) -> None:
    """二级 hot work at night becomes 一级 (5.1.1) and so gets the 8 h cap."""
    night = dt.datetime(2026, 12, 1, 14, 30, tzinfo=dt.UTC)  # 22:30 Shanghai
    req = f.permit_create(DH, start=night, hours=9, fields={"location_class": "other"})
    with pytest.raises(RuleViolation) as exc:
        await svc.create(actor=f.actor("app"), data=req)
    assert exc.value.findings[0].params["level"] == "1"


async def test_create_hot_work_wind_force5_refused_unless_unavoidable(svc: PermitService) -> None:
    """Outdoor hot work at force 5 is refused; declared unavoidable it is raised (5.2.15)."""
    with pytest.raises(RuleViolation) as exc:
        await svc.create(actor=f.actor("app"), data=f.permit_create(DH, fields={"wind_force": 5}))
    assert exc.value.clause == "5.2.15"
    p = await svc.create(
        actor=f.actor("app"),
        data=f.permit_create(DH, fields={"wind_force": 5, "wind_unavoidable": True}),
    )
    assert p.level == "special"
    assert [x.fact for x in p.level_facts][-1] == "wind_force"


async def test_create_height_below_2m_not_a_permit(svc: PermitService) -> None:
    """Below 2 m is not work at height (3.8)."""
    with pytest.raises(RuleViolation) as exc:
        await svc.create(
            actor=f.actor("app"), data=f.permit_create(PermitType.GC, fields={"height_m": 1.99})
        )
    assert exc.value.rule == "scope.height_below_2m"


async def test_create_missing_required_trade_refused(svc: PermitService) -> None:
    """Hot work needs a certified welder among its workers (4.9)."""
    req = f.permit_create(DH, crew=[("w5", None)])
    with pytest.raises(RuleViolation) as exc:
        await svc.create(actor=f.actor("app"), data=req)
    assert exc.value.rule == "workers.trade_missing"


async def test_create_by_non_applicant_refused(svc: PermitService) -> None:
    """Only an applicant raises permits."""
    with pytest.raises(NotAuthorized):
        await svc.create(actor=f.actor("wat"), data=f.permit_create(DH))


# -- documents and content lock ------------------------------------------------------------


async def test_submit_grade1_hot_work_without_jsa_refused(svc: PermitService) -> None:
    """特级/一级 hot work needs a JSA file before submission."""
    p = await svc.create(actor=f.actor("app"), data=f.permit_create(DH))
    with pytest.raises(RuleViolation) as exc:
        await svc.submit(actor=f.actor("app"), permit_id=p.permit_id)
    assert exc.value.rule == "evidence.jsa_required"


async def test_submit_lift_40t_needs_lift_plan(svc: PermitService) -> None:
    """二级 lifting (40 t) needs a lift plan (9.2.1); 39.9 t does not."""
    small = await svc.create(
        actor=f.actor("app"), data=f.permit_create(PermitType.DZ, fields={"mass_t": 39.9})
    )
    await svc.submit(actor=f.actor("app"), permit_id=small.permit_id)
    big = await svc.create(
        actor=f.actor("app"), data=f.permit_create(PermitType.DZ, fields={"mass_t": 40.0})
    )
    with pytest.raises(RuleViolation) as exc:
        await svc.submit(actor=f.actor("app"), permit_id=big.permit_id)
    assert (exc.value.rule, exc.value.clause) == ("evidence.lift_plan_required", "9.2.1")


async def test_submitted_permit_content_locked_in_database(
    svc: PermitService, seeded_url: str
) -> None:
    """After submission no content column can change, even by raw SQL (4.18)."""
    p = await f.approved(svc, f.permit_create(DH))
    with (
        psycopg.connect(seeded_url) as conn,
        pytest.raises(psycopg.errors.CheckViolation, match=r"4\.18"),
    ):
        conn.execute("UPDATE permits SET title = 'other' WHERE permit_id = %s", (p.permit_id,))
    with psycopg.connect(seeded_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("DELETE FROM permit_workers WHERE permit_id = %s", (p.permit_id,))


async def test_submit_document_after_submission_refused(svc: PermitService) -> None:
    """A JSA cannot be swapped once the permit is submitted (4.18)."""
    p = await f.approved(svc, f.permit_create(DH))
    with pytest.raises(RuleViolation) as exc:
        await svc.add_evidence(
            actor=f.actor("app"), permit_id=p.permit_id, step="jsa", content=f.PDF + b"v2"
        )
    assert exc.value.rule == "content.locked"


# -- approvals: on site, separation of duties ------------------------------------------------


async def _submitted(svc: PermitService, ptype: PermitType = DH, **kw: object) -> object:
    p = await svc.create(actor=f.actor("app"), data=f.permit_create(ptype, **kw))  # type: ignore[arg-type]
    await f.upload(svc, p, EvidencePhase.SUBMIT)
    return await svc.submit(actor=f.actor("app"), permit_id=p.permit_id)


async def test_approve_49m_from_work_point_accepted(svc: PermitService) -> None:
    """An approval signed 49 m from the work point counts as on site (4.11)."""
    p = await _submitted(svc)
    p = await svc.approve(actor=f.actor("unit"), permit_id=p.permit_id, position=f.point_at(49))
    assert p.state is PermitState.IN_REVIEW


async def test_approve_51m_from_work_point_refused_and_recorded(
    svc: PermitService, seeded_url: str
) -> None:
    """51 m away is remote approval: refused, trail and violation recorded (4.11)."""
    p = await _submitted(svc)
    with pytest.raises(RuleViolation) as exc:
        await svc.approve(actor=f.actor("unit"), permit_id=p.permit_id, position=f.point_at(51))
    assert (exc.value.rule, exc.value.clause) == ("approval.on_site", "4.11")
    with psycopg.connect(seeded_url) as conn:
        v = conn.execute("SELECT rule, user_id FROM permit_violations").fetchall()
        a = conn.execute("SELECT action FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    assert v == [("approval.on_site", "unit")]
    assert a == ("approve.refused",)


async def test_approve_own_permit_refused(svc: PermitService) -> None:
    """An applicant holding an approver role still cannot approve their own permit."""
    req = f.permit_create(DH)
    p = await svc.create(actor=f.Actor("multi", frozenset({"applicant", "local_unit"})), data=req)
    await f.upload(svc, p, EvidencePhase.SUBMIT)
    p = await svc.submit(actor=f.Actor("multi", frozenset({"applicant"})), permit_id=p.permit_id)
    with pytest.raises(SeparationOfDuties) as exc:
        await svc.approve(actor=f.actor("multi"), permit_id=p.permit_id, position=f.ORIGIN)
    assert exc.value.rule == "sod.own_permit"


async def test_approve_two_steps_by_one_user_refused(svc: PermitService) -> None:
    """A user holding two route roles signs only one step (特级: local unit, safety, leader)."""
    p = await _submitted(svc, fields={"running_plant": True})
    assert p.level == "special"
    await svc.approve(actor=f.actor("multi"), permit_id=p.permit_id, position=f.ORIGIN)
    with pytest.raises(SeparationOfDuties) as exc:
        await svc.approve(actor=f.actor("multi"), permit_id=p.permit_id, position=f.ORIGIN)
    assert exc.value.rule == "sod.two_steps"


async def test_approve_by_watcher_refused(svc: PermitService) -> None:
    """The permit's watcher cannot approve it."""
    p = await _submitted(svc, watcher="wat2")
    watcher_approver = f.Actor("wat2", frozenset({"watcher", "local_unit"}))
    with pytest.raises(SeparationOfDuties):
        await svc.approve(actor=watcher_approver, permit_id=p.permit_id, position=f.ORIGIN)


async def test_approve_wrong_role_refused(svc: PermitService) -> None:
    """The safety department cannot sign the local unit's step first."""
    p = await _submitted(svc)
    with pytest.raises(NotAuthorized, match="local_unit"):
        await svc.approve(actor=f.actor("safety"), permit_id=p.permit_id, position=f.ORIGIN)


async def test_database_refuses_second_signature_of_a_user(
    svc: PermitService, seeded_url: str
) -> None:
    """One signature per user per route round is a constraint, not only a check."""
    p = await _submitted(svc)
    await svc.approve(actor=f.actor("unit"), permit_id=p.permit_id, position=f.ORIGIN)
    with psycopg.connect(seeded_url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO permit_approvals (permit_id, round, step, role, kind, decision, user_id,"
            " signed_at, lat, lon, distance_m) SELECT permit_id, round, 2, 'safety_dept',"
            " 'approve', 'approved', 'unit', now(), 0, 0, 0 FROM permits WHERE permit_id = %s",
            (p.permit_id,),
        )


async def test_excavation_countersigns_any_order_then_final(svc: PermitService) -> None:
    """Excavation: seven countersigns in any order, then the specialist department (B.1)."""
    p = await _submitted(svc, PermitType.DT)
    with pytest.raises(NotAuthorized):
        await svc.approve(actor=f.actor("spec"), permit_id=p.permit_id, position=f.ORIGIN)
    for user in [
        "cs-safety",
        "cs-water",
        "cs-fire",
        "cs-steam",
        "cs-power",
        "cs-process",
        "cs-equipment",
    ]:
        p = await svc.approve(actor=f.actor(user), permit_id=p.permit_id, position=f.ORIGIN)
        assert p.state is PermitState.IN_REVIEW
    p = await svc.approve(actor=f.actor("spec"), permit_id=p.permit_id, position=f.ORIGIN)
    assert p.state is PermitState.APPROVED


async def test_reject_returns_draft_and_restarts_route(svc: PermitService) -> None:
    """A rejection sends the permit back as a draft; the next round starts from step 1."""
    p = await _submitted(svc)
    await svc.approve(actor=f.actor("unit"), permit_id=p.permit_id, position=f.ORIGIN)
    p = await svc.reject(
        actor=f.actor("safety"),
        permit_id=p.permit_id,
        position=f.ORIGIN,
        reason="isolation plan missing",
    )
    assert (p.state, p.round) == (PermitState.DRAFT, 2)
    p = await svc.submit(actor=f.actor("app"), permit_id=p.permit_id)
    p = await svc.approve(actor=f.actor("unit"), permit_id=p.permit_id, position=f.ORIGIN)
    assert p.state is PermitState.IN_REVIEW


# -- gas tests (5.3, 6.3-6.5) ----------------------------------------------------------------


async def _ready(svc: PermitService, ptype: PermitType = DH, **kw: object):  # type: ignore[no-untyped-def]
    return await f.ready(svc, f.permit_create(ptype, **kw))  # type: ignore[arg-type]


async def test_activate_gas_test_29min_old_accepted(svc: PermitService, clock: f.Clock) -> None:
    """A passing gas test 29 min old is recent enough (≤ 30 min)."""
    p = await _ready(svc)
    clock.advance(minutes=29)
    assert (await f.activate(svc, p)).state is PermitState.ACTIVE


async def test_activate_gas_test_31min_old_refused(svc: PermitService, clock: f.Clock) -> None:
    """A gas test 31 min old is stale: activation refused with clause 5.3."""
    p = await _ready(svc)
    clock.advance(minutes=31)
    with pytest.raises(RuleViolation) as exc:
        await f.activate(svc, p)
    assert rules(exc) == {"gas.stale"}
    assert exc.value.clause == "5.3"


async def test_activate_last_gas_test_failed_refused(svc: PermitService, clock: f.Clock) -> None:
    """The latest test decides: a later failing test blocks despite an earlier pass."""
    p = await _ready(svc)
    clock.advance(minutes=1)
    bad = GasTestCreate(
        taken_at=clock.now,
        point="P1",
        o2_pct=20.9,
        readings=[GasReadingIn(substance="propane", value=0.3, unit="%vol")],
    )
    test = await svc.record_gas_test(actor=f.actor("ana"), permit_id=p.permit_id, data=bad)
    assert (test.passed, [x.rule for x in test.failures]) == (False, ["gas.flammable"])
    with pytest.raises(RuleViolation) as exc:
        await f.activate(svc, p)
    assert rules(exc) == {"gas.failed"}


async def test_gas_test_backfilled_refused(svc: PermitService, clock: f.Clock) -> None:
    """A gas test cannot be entered long after sampling (no back-filling)."""
    p = await f.approved(svc, f.permit_create(DH))
    late = f.passing_gas(DH, clock.now - dt.timedelta(minutes=11))
    with pytest.raises(RuleViolation) as exc:
        await svc.record_gas_test(actor=f.actor("ana"), permit_id=p.permit_id, data=late)
    assert exc.value.rule == "gas.backfilled"


async def test_gas_failure_on_active_permit_suspends_it(svc: PermitService, clock: f.Clock) -> None:
    """Any gas alarm on running work stops it (5.2.6, 6.5)."""
    p = await f.activate(svc, await _ready(svc, PermitType.SX))
    low_o2 = GasTestCreate(
        taken_at=clock.now,
        point="manway",
        o2_pct=19.4,
        readings=[GasReadingIn(substance="methane", value=0.0, unit="%vol")],
    )
    await svc.record_gas_test(actor=f.actor("ana"), permit_id=p.permit_id, data=low_o2)
    p = await svc.get(p.permit_id)
    assert (p.state, p.suspend_reason) == (PermitState.SUSPENDED, SuspendReason.GAS_ALARM)


# -- check-in (4.10, 50 m) ------------------------------------------------------------------


async def _approved_with_photos_and_gas(svc: PermitService):  # type: ignore[no-untyped-def]
    p = await f.approved(svc, f.permit_create(DH))
    await f.upload(svc, p, EvidencePhase.PRE_START, 50)
    await svc.record_gas_test(
        actor=f.actor("ana"), permit_id=p.permit_id, data=f.passing_gas(DH, svc.clock())
    )
    return p


async def test_checkin_49m_allows_activation(svc: PermitService) -> None:
    """A watcher 49 m from the work point is at the work point."""
    p = await _approved_with_photos_and_gas(svc)
    c = await svc.check_in(
        actor=f.actor("wat"), permit_id=p.permit_id, position=f.point_at(49), accuracy_m=5
    )
    assert (c.within, round(c.distance_m)) == (True, 49)
    assert (await f.activate(svc, p)).state is PermitState.ACTIVE


async def test_checkin_51m_blocks_until_override(svc: PermitService, seeded_url: str) -> None:
    """51 m: recorded with a violation; activation blocked until an approver overrides."""
    p = await _approved_with_photos_and_gas(svc)
    c = await svc.check_in(
        actor=f.actor("wat"), permit_id=p.permit_id, position=f.point_at(51), accuracy_m=5
    )
    assert (c.within, round(c.distance_m)) == (False, 51)
    with pytest.raises(RuleViolation) as exc:
        await f.activate(svc, p)
    assert rules(exc) == {"checkin.too_far"}
    with pytest.raises(SeparationOfDuties):
        await svc.override_check_in(
            actor=f.Actor("wat", frozenset({"watcher", "local_unit"})),
            permit_id=p.permit_id,
            checkin_id=c.checkin_id,
            reason="x",
        )
    await svc.override_check_in(
        actor=f.actor("safety"),
        permit_id=p.permit_id,
        checkin_id=c.checkin_id,
        reason="GPS shadow under the rack",
    )
    assert (await f.activate(svc, p)).state is PermitState.ACTIVE
    with psycopg.connect(seeded_url) as conn:
        assert conn.execute("SELECT rule FROM permit_violations").fetchall() == [
            ("checkin.too_far",)
        ]


async def test_checkin_by_someone_else_refused(svc: PermitService) -> None:
    """Only the permit's watcher checks in."""
    p = await f.approved(svc, f.permit_create(DH))
    with pytest.raises(RuleViolation, match="watcher"):
        await svc.check_in(
            actor=f.actor("wat2"), permit_id=p.permit_id, position=f.ORIGIN, accuracy_m=5
        )


# -- evidence, measures, weather, certificates ----------------------------------------------


async def test_activate_with_one_photo_per_step_refused(svc: PermitService) -> None:
    """Each required step needs two distinct photos; a duplicate does not count."""
    p = await f.approved(svc, f.permit_create(PermitType.MB))
    for content in (f.jpeg(1), f.jpeg(1)):
        await svc.add_evidence(
            actor=f.actor("wat"), permit_id=p.permit_id, step="blind_before", content=content
        )
    await svc.check_in(actor=f.actor("wat"), permit_id=p.permit_id, position=f.ORIGIN, accuracy_m=3)
    with pytest.raises(RuleViolation) as exc:
        await f.activate(svc, p, by="wat")
    assert exc.value.findings[0].params == {"step": "blind_before", "need": 2, "have": 1}


async def test_activate_unconfirmed_measure_refused(svc: PermitService) -> None:
    """Every safety measure must be confirmed on site."""
    p = await _ready(svc)
    with pytest.raises(RuleViolation) as exc:
        await svc.activate(
            actor=f.actor("post"),
            permit_id=p.permit_id,
            confirmed_measures=list(p.measures)[1:],
            conditions=f.CALM,
        )
    assert rules(exc) == {"measures.unconfirmed"}


@pytest.mark.parametrize(("wind", "ok"), [(4, True), (5, False)])
async def test_activate_height_wind_boundary(svc: PermitService, wind: int, ok: bool) -> None:
    """Height work stops at wind force 5 (8.2.6)."""
    p = await _ready(svc, PermitType.GC)
    call = svc.activate(
        actor=f.actor("post"),
        permit_id=p.permit_id,
        confirmed_measures=list(p.measures),
        conditions=Conditions(wind_force=wind),
    )
    if ok:
        assert (await call).state is PermitState.ACTIVE
    else:
        with pytest.raises(RuleViolation) as exc:
            await call
        assert exc.value.clause == "8.2.6"


@pytest.mark.parametrize(("wind", "ok"), [(5, True), (6, False)])
async def test_activate_outdoor_lift_wind_boundary(svc: PermitService, wind: int, ok: bool) -> None:
    """Outdoor lifting stops at wind force 6 (9.2.4)."""
    p = await _ready(svc, PermitType.DZ)
    call = svc.activate(
        actor=f.actor("post"),
        permit_id=p.permit_id,
        confirmed_measures=list(p.measures),
        conditions=Conditions(wind_force=wind),
    )
    if ok:
        assert (await call).state is PermitState.ACTIVE
    else:
        with pytest.raises(RuleViolation) as exc:
            await call
        assert exc.value.clause == "9.2.4"


async def test_activate_hot_work_by_watcher_refused(svc: PermitService) -> None:
    """Hot work starts only after the on-shift post leader checks the ticket."""
    p = await _ready(svc)
    with pytest.raises(NotAuthorized, match="post_leader"):
        await f.activate(svc, p, by="wat")


async def test_activate_expired_certificate_blocks_worker(
    svc: PermitService, clock: f.Clock, seeded_url: str
) -> None:
    """A certificate that lapsed between approval and start blocks activation (4.9)."""
    p = await _ready(svc)
    with psycopg.connect(seeded_url) as conn:
        conn.execute(
            "UPDATE certificates SET valid_until = %s WHERE worker_id = 'w1'",
            (clock.now.date() - dt.timedelta(days=1),),
        )
    with pytest.raises(RuleViolation) as exc:
        await f.activate(svc, p)
    assert exc.value.rule == "certificate.invalid"
    assert exc.value.findings[0].params["reason"] == "expired"
    with psycopg.connect(seeded_url) as conn:
        rows = conn.execute(
            "SELECT phase, worker_id, outcome, reason FROM certificate_checks"
            " WHERE phase = 'activation'"
        ).fetchall()
        violators = conn.execute("SELECT worker_id FROM permit_violations").fetchall()
    assert rows == [("activation", "w1", "invalid", "expired")]
    assert violators == [("w1",)]


async def test_approve_final_step_attaches_certificate_report(
    svc: PermitService, seeded_url: str
) -> None:
    """The final approval carries the verification report of each certified worker."""
    p = await f.approved(svc, f.permit_create(PermitType.GC))
    with psycopg.connect(seeded_url) as conn:
        rows = conn.execute(
            "SELECT c.worker_id, c.outcome, c.source, a.role FROM certificate_checks c"
            " JOIN permit_approvals a USING (approval_id) WHERE c.permit_id = %s",
            (p.permit_id,),
        ).fetchall()
    assert rows == [("w2", "valid", "registry", "specialist_dept")]


async def test_approve_mismatched_certificate_refused(svc: PermitService, seeded_url: str) -> None:
    """A certificate on file whose issuer differs from the authority's is blocked."""
    with psycopg.connect(seeded_url) as conn:
        conn.execute("UPDATE certificates SET issuer = 'someone else' WHERE worker_id = 'w2'")
    with pytest.raises(RuleViolation) as exc:
        await f.approved(svc, f.permit_create(PermitType.GC))
    assert exc.value.findings[0].params["reason"] == "issuer_mismatch"


# -- suspension and resumption ------------------------------------------------------------


@pytest.mark.parametrize(("paused", "needs_retest"), [(29, False), (31, True)])
async def test_resume_grade1_hot_work_retest_after_30min(
    svc: PermitService, clock: f.Clock, paused: int, needs_retest: bool
) -> None:
    """一级 hot work paused > 30 min needs a new gas test before restarting (5.3)."""
    p = await f.activate(svc, await _ready(svc))
    clock.advance(minutes=10)
    await svc.suspend(
        actor=f.actor("wat"), permit_id=p.permit_id, reason_kind=SuspendReason.PAUSE, reason="lunch"
    )
    clock.advance(minutes=paused)
    call = svc.resume(
        actor=f.actor("post"),
        permit_id=p.permit_id,
        confirmed_measures=list(p.measures),
        conditions=f.CALM,
    )
    if not needs_retest:
        assert (await call).state is PermitState.ACTIVE
        return
    with pytest.raises(RuleViolation) as exc:
        await call
    assert rules(exc) == {"gas.retest"}
    await svc.record_gas_test(
        actor=f.actor("ana"), permit_id=p.permit_id, data=f.passing_gas(DH, clock.now)
    )
    p2 = await svc.resume(
        actor=f.actor("post"),
        permit_id=p.permit_id,
        confirmed_measures=list(p.measures),
        conditions=f.CALM,
    )
    assert (p2.state, p2.suspended_at) == (PermitState.ACTIVE, None)


@pytest.mark.parametrize(("paused", "needs_retest"), [(59, False), (61, True)])
async def test_resume_confined_space_retest_after_60min(
    svc: PermitService, clock: f.Clock, paused: int, needs_retest: bool
) -> None:
    """A confined space paused > 60 min needs a re-test (6.5)."""
    p = await f.activate(svc, await _ready(svc, PermitType.SX))
    await svc.suspend(
        actor=f.actor("wat"), permit_id=p.permit_id, reason_kind=SuspendReason.PAUSE, reason="break"
    )
    clock.advance(minutes=paused)
    call = svc.resume(
        actor=f.actor("wat"),
        permit_id=p.permit_id,
        confirmed_measures=list(p.measures),
        conditions=None,
    )
    if needs_retest:
        with pytest.raises(RuleViolation, match="gas"):
            await call
    else:
        assert (await call).state is PermitState.ACTIVE


async def test_resume_after_gas_alarm_always_retests(svc: PermitService, clock: f.Clock) -> None:
    """After a gas alarm work restarts only after a new passing test (5.2.6, 6.5)."""
    p = await f.activate(svc, await _ready(svc, PermitType.SX))
    clock.advance(minutes=3)
    await svc.suspend(
        actor=f.actor("post"),
        permit_id=p.permit_id,
        reason_kind=SuspendReason.GAS_ALARM,
        reason="detector alarm",
    )
    clock.advance(minutes=2)
    with pytest.raises(RuleViolation) as exc:
        await svc.resume(
            actor=f.actor("wat"),
            permit_id=p.permit_id,
            confirmed_measures=list(p.measures),
            conditions=None,
        )
    assert exc.value.findings[0].params["why"] == "gas_alarm"


async def test_resume_after_watcher_left_needs_new_checkin(
    svc: PermitService, clock: f.Clock
) -> None:
    """A watcher who left takes the permit back; work resumes after they check in (4.10 f)."""
    p = await f.activate(svc, await _ready(svc, PermitType.GC))
    clock.advance(minutes=3)
    await svc.suspend(
        actor=f.actor("wat"),
        permit_id=p.permit_id,
        reason_kind=SuspendReason.WATCHER_AWAY,
        reason="called away",
    )
    clock.advance(minutes=5)
    with pytest.raises(RuleViolation) as exc:
        await svc.resume(
            actor=f.actor("post"),
            permit_id=p.permit_id,
            confirmed_measures=list(p.measures),
            conditions=f.CALM,
        )
    assert rules(exc) == {"resume.watcher_back"}
    await svc.check_in(actor=f.actor("wat"), permit_id=p.permit_id, position=f.ORIGIN, accuracy_m=4)
    p = await svc.resume(
        actor=f.actor("post"),
        permit_id=p.permit_id,
        confirmed_measures=list(p.measures),
        conditions=f.CALM,
    )
    assert p.state is PermitState.ACTIVE


async def test_resume_height_without_reconfirmation_refused(
    svc: PermitService, clock: f.Clock
) -> None:
    """Height work re-confirms environment and measures after any interruption (8.2.11)."""
    p = await f.activate(svc, await _ready(svc, PermitType.GC))
    await svc.suspend(
        actor=f.actor("wat"), permit_id=p.permit_id, reason_kind=SuspendReason.PAUSE, reason="tea"
    )
    with pytest.raises(RuleViolation) as exc:
        await svc.resume(
            actor=f.actor("post"), permit_id=p.permit_id, confirmed_measures=[], conditions=f.CALM
        )
    assert (exc.value.rule, exc.value.clause) == ("resume.reconfirm", "8.2.11")


# -- conflicts (SIMOPS) ----------------------------------------------------------------------


async def _live(svc: PermitService, req) -> object:  # type: ignore[no-untyped-def]
    p = await f.ready(svc, req, seed=300)
    return await f.activate(svc, p, by="post")


@pytest.mark.parametrize(("metres", "blocked"), [(29.0, True), (31.0, False)])
async def test_activate_hot_work_near_venting_boundary(
    svc: PermitService, metres: float, blocked: bool
) -> None:
    """No flammable-gas venting within 30 m of hot work (5.2.9), checked from approval on."""
    await _live(
        svc,
        f.permit_create(
            PermitType.SX,
            at=f.point_at(metres),
            activities=["venting_flammable_gas"],
            watcher="wat2",
        ),
    )
    if blocked:
        with pytest.raises(ConflictDetected) as exc:
            await f.activate(svc, await _ready(svc, coordinator="post"))
        assert (rules(exc), exc.value.clause) == ({"conflict.hot_work_venting"}, "5.2.9")
    else:
        p = await f.activate(svc, await _ready(svc, coordinator="post"))
        assert p.state is PermitState.ACTIVE


async def test_activate_second_blinding_same_pipe_refused(svc: PermitService) -> None:
    """Only one blinding job on a pipe at a time (7.10): refused already at approval."""
    await _live(svc, f.permit_create(PermitType.MB, at=f.point_at(200), watcher="wat2"))
    with pytest.raises(ConflictDetected) as exc:
        await f.ready(svc, f.permit_create(PermitType.MB, fields={"blind_number": "B-8"}))
    assert (exc.value.rule, exc.value.clause) == ("conflict.blinding_same_pipe", "7.10")


async def test_activate_near_live_permit_without_coordinator_refused(svc: PermitService) -> None:
    """Simultaneous operations within the radius need a named coordinator (4.7)."""
    await _live(svc, f.permit_create(PermitType.DL, at=f.point_at(40), watcher="wat2"))
    p = await _ready(svc, PermitType.DT)
    with pytest.raises(ConflictDetected) as exc:
        await f.activate(svc, p, by="wat")
    assert (exc.value.rule, exc.value.clause) == ("simops.coordinator", "4.7")


async def test_approve_final_step_blocked_by_live_conflict(svc: PermitService) -> None:
    """Conflicts are checked at approval too: hot work 20 m from live painting."""
    await _live(
        svc,
        f.permit_create(PermitType.GC, at=f.point_at(8), activities=["painting"], watcher="wat2"),
    )
    with pytest.raises(ConflictDetected) as exc:
        await f.approved(svc, f.permit_create(DH))
    assert exc.value.rule == "conflict.hot_work_painting"


# -- linked temporary electricity (10.8) ------------------------------------------------------


async def test_host_completion_terminates_temporary_electricity(
    svc: PermitService, seeded_url: str
) -> None:
    """Temporary electricity ends with the hot work it feeds (10.8)."""
    host = await f.activate(svc, await _ready(svc, coordinator="post"))
    yd = await f.ready(
        svc,
        f.permit_create(PermitType.YD, host=host.permit_id, watcher="wat2", coordinator="post"),
        seed=500,
    )
    yd = await f.activate(svc, yd, by="post")
    await f.upload(svc, host, EvidencePhase.CLOSURE, 700)
    tpl = svc.template(DH)
    await svc.complete(
        actor=f.actor("unit"),
        permit_id=host.permit_id,
        closure_checks=[c.id for c in tpl.closure_checks],
        position=f.ORIGIN,
    )
    yd = await svc.get(yd.permit_id)
    assert yd.state is PermitState.TERMINATED
    with psycopg.connect(seeded_url) as conn:
        ev = conn.execute(
            "SELECT kind, data->>'clause' FROM permit_events WHERE permit_id = %s"
            " ORDER BY event_id DESC LIMIT 1",
            (yd.permit_id,),
        ).fetchone()
    assert ev == ("terminate", "10.8")


# -- timers -----------------------------------------------------------------------------------


async def test_tick_flags_due_within_30min_once(svc: PermitService, clock: f.Clock) -> None:
    """A permit ending in 31 min is not flagged; at 29 min it is, once."""
    p = await f.activate(svc, await _ready(svc))
    clock.now = p.planned_end - dt.timedelta(minutes=31)
    assert (await svc.tick(clock.now)).due_soon == []
    clock.now = p.planned_end - dt.timedelta(minutes=29)
    assert (await svc.tick(clock.now)).due_soon == [p.number]
    assert (await svc.tick(clock.now)).due_soon == []


async def test_tick_terminates_at_expiry_with_event(
    svc: PermitService, clock: f.Clock, seeded_url: str
) -> None:
    """At the end of its validity a running permit is expired with an event for the rules."""
    p = await f.activate(svc, await _ready(svc))
    assert (await svc.tick(p.planned_end - dt.timedelta(seconds=1))).expired == []
    report = await svc.tick(p.planned_end)
    assert report.expired == [p.number]
    assert (await svc.get(p.permit_id)).state is PermitState.EXPIRED
    with psycopg.connect(seeded_url) as conn:
        ev = conn.execute(
            "SELECT kind, from_state, to_state, (data->>'command_devices')::bool FROM"
            " permit_events WHERE permit_id = %s ORDER BY event_id DESC LIMIT 1",
            (p.permit_id,),
        ).fetchone()
    assert ev == ("expire", "active", "expired", True)


async def test_tick_flags_continuous_monitoring_after_2h(
    svc: PermitService, clock: f.Clock
) -> None:
    """Confined-space readings are expected at least every 2 h (6.4)."""
    p = await f.activate(svc, await _ready(svc, PermitType.SX, hours=6))
    last = (await svc.bundle(p.permit_id)).gas_tests[-1].taken_at
    assert (await svc.tick(last + dt.timedelta(minutes=119))).gas_overdue == []
    assert (await svc.tick(last + dt.timedelta(minutes=121))).gas_overdue == [p.number]
    assert (await svc.tick(last + dt.timedelta(minutes=125))).gas_overdue == []


async def test_scheduler_service_expires_permit(
    pool: object, clock: f.Clock, tmp_path: object
) -> None:
    """The running scheduler (a context manager) expires a permit whose time is up."""
    import asyncio

    from permits.service import PermitService

    settings = f.settings(scheduler_interval_s=0.05)
    settings = settings.model_copy(update={"scheduler_enabled": True})
    async with PermitService(
        pool=pool,
        settings=settings,
        data_dir=tmp_path,  # type: ignore[arg-type]
        verifier=f.verifier(),
        clock=clock,
    ) as svc:
        p = await f.activate(svc, await _ready(svc))
        clock.now = p.planned_end
        async with asyncio.timeout(10):
            while (await svc.get(p.permit_id)).state is not PermitState.EXPIRED:
                await asyncio.sleep(0.05)
        assert svc.scheduler is not None
        assert svc.scheduler.passes >= 1


# -- transitions ------------------------------------------------------------------------------


async def test_activate_from_draft_is_invalid_transition(svc: PermitService) -> None:
    """Work cannot start on a draft."""
    p = await svc.create(actor=f.actor("app"), data=f.permit_create(DH))
    with pytest.raises(InvalidTransition) as exc:
        await f.activate(svc, p)
    assert (exc.value.from_state, exc.value.to_state) == ("draft", "active")


async def test_complete_by_applicant_refused(svc: PermitService) -> None:
    """The applicant cannot sign the completion acceptance (4.15)."""
    p = await f.activate(svc, await _ready(svc))
    applicant_unit = f.Actor("app", frozenset({"applicant", "local_unit"}))
    with pytest.raises(SeparationOfDuties):
        await svc.complete(
            actor=applicant_unit, permit_id=p.permit_id, closure_checks=[], position=f.ORIGIN
        )
