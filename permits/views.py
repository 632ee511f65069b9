"""Domain records → reply models, with names and labels in the requested language."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from permits import i18n, routes
from permits.audit import AuditEntry, AuditReport
from permits.certificates import CertificateClaim
from permits.i18n import Lang
from permits.models import Approval, CheckIn, Evidence, GasTest, LevelResult, Permit, PermitType
from permits.schemas import (
    ApprovalRead,
    AuditEntryRead,
    AuditVerifyRead,
    CertificateCheckRead,
    CertificateRead,
    CheckInRead,
    EventRead,
    EvidenceRead,
    EvidenceStepRead,
    FieldRead,
    GasTestRead,
    ItemRead,
    LevelFactRead,
    LevelRead,
    PermitDetail,
    PermitRead,
    RouteStepRead,
    TemplateRead,
)
from permits.service import PermitBundle
from permits.templates import Catalog, Item, Template


def _items(items: Sequence[Item], lang: Lang) -> list[ItemRead]:
    return [ItemRead(id=i.id, text=i.text(lang), clause=i.clause) for i in items]


def _by_id(items: Sequence[Item], ids: Sequence[str], lang: Lang) -> list[ItemRead]:
    known = {i.id: i for i in items}
    out = []
    for key in ids:
        item = known.get(key)
        if item is not None:
            out.append(ItemRead(id=key, text=item.text(lang), clause=item.clause))
        else:  # an applicant's extra risk: its text is its id without the prefix
            out.append(ItemRead(id=key, text=key.removeprefix("extra:")))
    return out


def template_read(tpl: Template, catalog: Catalog, lang: Lang, photos: int) -> TemplateRead:
    return TemplateRead(
        type=tpl.type,
        name=i18n.type_name(tpl.type, lang),
        version=tpl.version,
        clause=tpl.clause,
        levels=list(tpl.levels),
        fields=[
            FieldRead(
                name=f.name,
                label=f.zh if lang is Lang.ZH else f.en,
                type=f.type,
                required=f.required,
                choices=list(f.choices),
            )
            for f in tpl.fields
        ],
        risks=_items(tpl.risks, lang),
        measures=_items(tpl.measures, lang),
        emergency=_items(tpl.emergency, lang),
        evidence_steps=[
            EvidenceStepRead(
                id=s.id,
                phase=str(s.phase),
                kind=s.kind,
                text=s.zh if lang is Lang.ZH else s.en,
                need=photos if s.kind == "photo" else 1,
            )
            for s in tpl.evidence_steps
        ],
        closure_checks=_items(tpl.closure_checks, lang),
        required_trades=_items([catalog.trades[t] for t in tpl.required_trades], lang),
    )


def level_read(
    ptype: PermitType,
    result: LevelResult,
    cap: dt.timedelta,
    clause: str,
    route: Sequence[routes.Step],
    lang: Lang,
) -> LevelRead:
    return LevelRead(
        type=ptype,
        type_name=i18n.type_name(ptype, lang),
        level=result.level,
        level_label=i18n.level_label(ptype, result.level, lang),
        permit_required=result.permit_required,
        facts=[
            LevelFactRead(fact=f.fact, value=f.value, effect=f.effect, clause=f.clause)
            for f in result.facts
        ],
        notes=list(result.notes),
        validity_cap_h=cap.total_seconds() / 3600,
        validity_clause=clause,
        route=_route(route, [], lang),
    )


def _route(
    route: Sequence[routes.Step], approvals: Sequence[Approval], lang: Lang, round_: int = 1
) -> list[RouteStepRead]:
    signed = {a.step: a for a in approvals if a.round == round_ and a.decision == "approved"}
    return [
        RouteStepRead(
            step=s.no,
            role=s.role,
            role_label=i18n.role_label(s.role, lang),
            kind=str(s.kind),
            group=s.group,
            signed_by=signed[s.no].user_id if s.no in signed else None,
            signed_at=signed[s.no].signed_at if s.no in signed else None,
        )
        for s in route
    ]


def permit_read(p: Permit, tpl: Template, lang: Lang) -> PermitRead:
    return PermitRead(
        permit_id=p.permit_id,
        number=p.number,
        site_id=p.site_id,
        type=p.type,
        type_name=i18n.type_name(p.type, lang),
        level=p.level,
        level_label=i18n.level_label(p.type, p.level, lang),
        level_facts=[
            LevelFactRead(fact=f.fact, value=f.value, effect=f.effect, clause=f.clause)
            for f in p.level_facts
        ],
        state=p.state,
        state_label=i18n.state_label(p.state, lang),
        template_version=p.template_version,
        title=p.title,
        applicant=p.applicant,
        watcher=p.watcher,
        workers=[{"worker_id": w.worker_id, "trade": w.trade} for w in p.workers],
        location={"lat": p.location.lat, "lon": p.location.lon},
        location_text=p.location_text,
        fields=dict(p.fields),
        activities=list(p.activities),
        risks=_by_id(tpl.risks, p.risks, lang),
        measures=_by_id(tpl.measures, p.measures, lang),
        planned_start=p.planned_start,
        planned_end=p.planned_end,
        host_permit_id=p.host_permit_id,
        coordinator=p.coordinator,
        round=p.round,
        created_at=p.created_at,
        submitted_at=p.submitted_at,
        approved_at=p.approved_at,
        activated_at=p.activated_at,
        suspended_at=p.suspended_at,
        suspend_reason=str(p.suspend_reason) if p.suspend_reason else None,
        completed_at=p.completed_at,
        closed_at=p.closed_at,
        ended_at=p.ended_at,
    )


def gas_read(t: GasTest, lang: Lang) -> GasTestRead:
    return GasTestRead(
        test_id=t.test_id,
        taken_at=t.taken_at,
        recorded_at=t.recorded_at,
        point=t.point,
        analyst=t.analyst,
        o2_pct=t.o2_pct,
        readings=[
            {"substance": r.substance, "value": r.value, "unit": r.unit, "lel_pct": r.lel_pct}
            for r in t.readings
        ],
        passed=t.passed,
        failures=[i18n.message(f.rule, f.params, lang) for f in t.failures],
    )


def checkin_read(c: CheckIn, lang: Lang, radius_m: float) -> CheckInRead:
    warning = None
    if not c.within:
        warning = i18n.message(
            "checkin.too_far", {"distance_m": round(c.distance_m, 1), "limit_m": radius_m}, lang
        )
    return CheckInRead(
        checkin_id=c.checkin_id,
        user_id=c.user_id,
        at=c.at,
        lat=c.point.lat,
        lon=c.point.lon,
        accuracy_m=c.accuracy_m,
        distance_m=round(c.distance_m, 2),
        within=c.within,
        override_by=c.override_by,
        override_reason=c.override_reason,
        warning=warning,
    )


def evidence_read(e: Evidence) -> EvidenceRead:
    return EvidenceRead(
        evidence_id=e.evidence_id,
        step=e.step,
        sha256=e.sha256,
        content_type=e.content_type,
        size=e.size,
        uploaded_by=e.uploaded_by,
        uploaded_at=e.uploaded_at,
        taken_at=e.taken_at,
        lat=e.point.lat if e.point else None,
        lon=e.point.lon if e.point else None,
        place_source=e.place_source,
    )


def detail(b: PermitBundle, lang: Lang, photos: int, radius_m: float) -> PermitDetail:
    p = b.permit
    base = permit_read(p, b.template, lang)
    steps = b.template.steps_for(p.level, p.fields)
    return PermitDetail(
        **base.model_dump(),
        route=_route(b.route, b.approvals, lang, p.round),
        approvals=[
            ApprovalRead(
                round=a.round,
                step=a.step,
                role=a.role,
                kind=str(a.kind),
                decision=str(a.decision),
                user_id=a.user_id,
                signed_at=a.signed_at,
                lat=a.point.lat,
                lon=a.point.lon,
                distance_m=round(a.distance_m, 2),
                comment=a.comment,
            )
            for a in b.approvals
        ],
        gas_tests=[gas_read(t, lang) for t in b.gas_tests],
        checkins=[checkin_read(c, lang, radius_m) for c in b.checkins],
        evidence=[evidence_read(e) for e in b.evidence],
        evidence_steps=[
            EvidenceStepRead(
                id=s.id,
                phase=str(s.phase),
                kind=s.kind,
                text=s.zh if lang is Lang.ZH else s.en,
                need=photos if s.kind == "photo" else 1,
                have=b.evidence_counts.get(s.id, 0),
            )
            for s in steps
        ],
        certificate_checks=[
            CertificateCheckRead(
                phase=c["phase"],
                worker_id=c["worker_id"],
                trade=c["trade"],
                number=c["number"],
                outcome=c["outcome"],
                reason=c["reason"],
                source=c["source"],
                checked_at=c["checked_at"],
                details=c["details"],
            )
            for c in b.certificate_checks
        ],
        events=[
            EventRead(
                event_id=e["event_id"],
                at=e["at"],
                kind=e["kind"],
                from_state=e["from_state"],
                to_state=e["to_state"],
                actor=e["actor"],
                reason=e["reason"],
            )
            for e in b.events
        ],
        closure_checks=_items(b.template.closure_checks, lang),
        emergency=_items(b.template.emergency, lang),
    )


def audit_entry_read(e: AuditEntry) -> AuditEntryRead:
    return AuditEntryRead(
        seq=e.seq,
        at=e.at,
        actor=e.actor,
        action=e.action,
        permit_id=e.permit_id,
        data=dict(e.data),
        prev_hash=e.prev_hash,
        hash=e.hash,
    )


def audit_report_read(r: AuditReport) -> AuditVerifyRead:
    return AuditVerifyRead(
        ok=r.ok,
        entries=r.entries,
        head_hash=r.head_hash,
        first_bad_seq=r.first_bad_seq,
        reason=r.reason,
    )


def certificate_read(c: CertificateClaim) -> CertificateRead:
    return CertificateRead(
        worker_id=c.worker_id,
        trade=c.trade,
        number=c.number,
        issuer=c.issuer,
        valid_until=c.valid_until,
        review_due=c.review_due,
    )
