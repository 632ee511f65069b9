"""HTTP routes of the permit domain (thin: parse, call the service, render).

Identity: every route needs a logged-in user (`api.auth`, JWT) of a site the permit belongs
to. The acting `Actor` is that user with their company positions from ``permit_users``
(applicant, local unit, safety department, ...): the login role lets a person in, the
position decides which GB 30871 step they may sign. A user without positions may read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from api.auth import Principal, Role, require_roles
from api.errors import InvalidQueryError
from api.schemas import ErrorRead
from permits import views
from permits.errors import EvidenceTooLarge, UnknownActor, finding
from permits.i18n import Lang, negotiate
from permits.models import Actor, GeoPoint, PermitState, PermitType
from permits.repository import SearchFilter
from permits.schemas import (
    AuditEntryRead,
    AuditVerifyRead,
    CertificateCreate,
    CertificateRead,
    CheckInCreate,
    CheckInRead,
    CloseRequest,
    CompleteRequest,
    EvidenceRead,
    GasTestCreate,
    GasTestRead,
    KpiRead,
    LevelPreview,
    LevelRead,
    OverrideRequest,
    PermitCreate,
    PermitDetail,
    PermitPage,
    PointIn,
    ReasonRequest,
    RejectRequest,
    SignRequest,
    StartRequest,
    SuspendRequest,
    TemplateRead,
)
from permits.service import PermitService

#: Who may use the permit API at all; positions and sites decide the rest.
viewer = require_roles(*Role)
#: Who may read and verify the whole trail (safety manager, control room, administrators).
auditor = require_roles(Role.SAFETY, Role.CONTROL_ROOM, Role.ADMIN)
#: Who may put a worker's certificates on file.
registrar = require_roles(Role.SAFETY, Role.APPROVER, Role.ADMIN)
router = APIRouter(prefix="/api/v1", dependencies=[Depends(viewer)])
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorRead} for code in (400, 401, 403, 404, 409, 413, 415, 422)
}


def service(request: Request) -> PermitService:
    svc: PermitService = request.app.state.runtime.permits
    return svc


User = Annotated[Principal, Depends(viewer)]


async def current_actor(request: Request, user: User) -> Actor:
    """The logged-in user with their company positions (none: read-only)."""
    try:
        return await service(request).actor(user.username)
    except UnknownActor:
        return Actor(user_id=user.username, roles=frozenset(), name=user.username)


async def scoped_permit(request: Request, permit_id: uuid.UUID, user: User) -> uuid.UUID:
    """The permit id of the path, once the caller is known to belong to its site."""
    permit = await service(request).get(permit_id)
    user.check_site(permit.site_id)
    return permit_id


async def scoped_worker(request: Request, worker_id: str, user: User) -> str:
    """The worker id of the path, once the caller is known to belong to the worker's site."""
    site = await service(request).worker_site(worker_id)
    if site is not None:
        user.check_site(site)
    return worker_id


def _site_scope(user: Principal, site: str | None) -> tuple[str | None, list[str] | None]:
    """(site, sites) for a query: a named site must be the caller's; else the caller's own."""
    if site is not None:
        user.check_site(site)
        return site, None
    return None, user.site_filter()


def language(
    request: Request,
    lang: Annotated[str | None, Query(description="zh or en (default: Accept-Language).")] = None,
) -> Lang:
    return negotiate(request.headers.get("accept-language"), lang)


Svc = Annotated[PermitService, Depends(service)]
Who = Annotated[Actor, Depends(current_actor)]
PermitId = Annotated[uuid.UUID, Depends(scoped_permit)]
WorkerId = Annotated[str, Depends(scoped_worker)]
L = Annotated[Lang, Depends(language)]


def _pt(p: PointIn) -> GeoPoint:
    return GeoPoint(p.lat, p.lon)


async def _detail(svc: PermitService, permit_id: uuid.UUID, lang: Lang) -> PermitDetail:
    s = svc.settings
    return views.detail(await svc.bundle(permit_id), lang, s.photos_per_step, s.checkin_radius_m)


# -- templates and levels ---------------------------------------------------------------------


@router.get("/permits/templates", response_model=list[TemplateRead], tags=["permits"])
async def templates(svc: Svc, lang: L) -> list[TemplateRead]:
    """The eight GB 30871-2022 templates (with the company's own measures)."""
    n = svc.settings.photos_per_step
    return [views.template_read(svc.template(t), svc.catalog, lang, n) for t in PermitType]


@router.get("/permits/templates/{ptype}", response_model=TemplateRead, tags=["permits"])
async def template(svc: Svc, lang: L, ptype: PermitType) -> TemplateRead:
    return views.template_read(svc.template(ptype), svc.catalog, lang, svc.settings.photos_per_step)


@router.post("/permits/levels", response_model=LevelRead, responses=ERRORS, tags=["permits"])
async def level(svc: Svc, lang: L, body: LevelPreview) -> LevelRead:
    """The level the facts decide, with the facts, the validity cap and the route."""
    result, cap, clause = await svc.preview_level(body)
    route = svc.route_of(body.type, result.level)
    return views.level_read(body.type, result, cap, clause, route, lang)


# -- permits ----------------------------------------------------------------------------------


@router.post(
    "/permits", status_code=201, response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def create(svc: Svc, who: Who, user: User, lang: L, body: PermitCreate) -> PermitDetail:
    """Raise a permit (draft) from its template; the level is computed."""
    user.check_site(body.site_id)
    p = await svc.create(actor=who, data=body)
    return await _detail(svc, p.permit_id, lang)


@router.get("/permits", response_model=PermitPage, responses=ERRORS, tags=["permits"])
async def search(
    svc: Svc,
    lang: L,
    user: User,
    site: str | None = None,
    type: PermitType | None = None,
    level: str | None = None,
    state: PermitState | None = None,
    worker: str | None = None,
    start: Annotated[dt.datetime | None, Query(description="Window start (overlap).")] = None,
    end: Annotated[dt.datetime | None, Query(description="Window end (overlap).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> PermitPage:
    """Permits by site, type, level, state, worker and planned-time overlap."""
    site, sites = _site_scope(user, site)
    found = await svc.search(
        SearchFilter(
            site_id=site,
            site_ids=sites,
            type=str(type) if type else None,
            level=level,
            state=str(state) if state else None,
            worker_id=worker,
            start=start,
            end=end,
            limit=limit,
            offset=offset,
        )
    )
    return PermitPage(
        count=len(found), permits=[views.permit_read(p, svc.template(p.type), lang) for p in found]
    )


@router.get("/permits/{permit_id}", response_model=PermitDetail, responses=ERRORS, tags=["permits"])
async def get(svc: Svc, lang: L, permit_id: PermitId) -> PermitDetail:
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/submit", response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def submit(svc: Svc, who: Who, lang: L, permit_id: PermitId) -> PermitDetail:
    await svc.submit(actor=who, permit_id=permit_id)
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/approve", response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def approve(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: SignRequest
) -> PermitDetail:
    """Sign the next route step on site (4.11)."""
    await svc.approve(
        actor=who,
        permit_id=permit_id,
        position=_pt(body.position),
        comment=body.comment,
        step=body.step,
    )
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/reject", response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def reject(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: RejectRequest
) -> PermitDetail:
    await svc.reject(
        actor=who, permit_id=permit_id, position=_pt(body.position), reason=body.reason
    )
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/gas-tests",
    status_code=201,
    response_model=GasTestRead,
    responses=ERRORS,
    tags=["permits"],
)
async def gas_test(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: GasTestCreate
) -> GasTestRead:
    return views.gas_read(
        await svc.record_gas_test(actor=who, permit_id=permit_id, data=body), lang
    )


@router.post(
    "/permits/{permit_id}/check-ins",
    status_code=201,
    response_model=CheckInRead,
    responses=ERRORS,
    tags=["permits"],
)
async def check_in(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: CheckInCreate
) -> CheckInRead:
    """The watcher's check-in; a distant one comes back with a warning."""
    c = await svc.check_in(
        actor=who, permit_id=permit_id, position=_pt(body.position), accuracy_m=body.accuracy_m
    )
    return views.checkin_read(c, lang, svc.settings.checkin_radius_m)


@router.post(
    "/permits/{permit_id}/check-ins/{checkin_id}/override",
    response_model=CheckInRead,
    responses=ERRORS,
    tags=["permits"],
)
async def override(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, checkin_id: int, body: OverrideRequest
) -> CheckInRead:
    c = await svc.override_check_in(
        actor=who, permit_id=permit_id, checkin_id=checkin_id, reason=body.reason
    )
    return views.checkin_read(c, lang, svc.settings.checkin_radius_m)


@router.post(
    "/permits/{permit_id}/evidence",
    status_code=201,
    response_model=EvidenceRead,
    responses=ERRORS,
    tags=["permits"],
)
async def evidence(
    svc: Svc,
    who: Who,
    permit_id: PermitId,
    step: Annotated[str, Form(min_length=1, max_length=64)],
    file: Annotated[UploadFile, File(description="JPEG/PNG photo or PDF document.")],
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Form(ge=-180, le=180)] = None,
    taken_at: Annotated[dt.datetime | None, Form()] = None,
) -> EvidenceRead:
    """Upload a photo or document for a required step (content-addressed)."""
    limit = svc.settings.evidence_max_bytes
    content = await file.read(limit + 1)
    if len(content) > limit:
        raise EvidenceTooLarge(finding("evidence.too_large", size=len(content), limit=limit))
    position = GeoPoint(lat, lon) if lat is not None and lon is not None else None
    e = await svc.add_evidence(
        actor=who,
        permit_id=permit_id,
        step=step,
        content=content,
        position=position,
        taken_at=taken_at,
    )
    return views.evidence_read(e)


@router.post(
    "/permits/{permit_id}/activate", response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def activate(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: StartRequest
) -> PermitDetail:
    """Start work after the pre-start checks."""
    await svc.activate(
        actor=who,
        permit_id=permit_id,
        confirmed_measures=body.confirmed_measures,
        conditions=body.conditions,
    )
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/suspend", response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def suspend(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: SuspendRequest
) -> PermitDetail:
    await svc.suspend(
        actor=who, permit_id=permit_id, reason_kind=body.reason_kind, reason=body.reason
    )
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/resume", response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def resume(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: StartRequest
) -> PermitDetail:
    await svc.resume(
        actor=who,
        permit_id=permit_id,
        confirmed_measures=body.confirmed_measures,
        conditions=body.conditions,
    )
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/complete", response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def complete(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: CompleteRequest
) -> PermitDetail:
    """Completion acceptance (4.15)."""
    await svc.complete(
        actor=who,
        permit_id=permit_id,
        closure_checks=body.closure_checks,
        position=_pt(body.position),
    )
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/close", response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def close(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: CloseRequest
) -> PermitDetail:
    await svc.close(actor=who, permit_id=permit_id, closure_checks=body.closure_checks)
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/cancel", response_model=PermitDetail, responses=ERRORS, tags=["permits"]
)
async def cancel(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: ReasonRequest
) -> PermitDetail:
    await svc.cancel(actor=who, permit_id=permit_id, reason=body.reason)
    return await _detail(svc, permit_id, lang)


@router.post(
    "/permits/{permit_id}/terminate",
    response_model=PermitDetail,
    responses=ERRORS,
    tags=["permits"],
)
async def terminate(
    svc: Svc, who: Who, lang: L, permit_id: PermitId, body: ReasonRequest
) -> PermitDetail:
    await svc.terminate(actor=who, permit_id=permit_id, reason=body.reason)
    return await _detail(svc, permit_id, lang)


@router.get(
    "/permits/{permit_id}/trail",
    response_model=list[AuditEntryRead],
    responses=ERRORS,
    tags=["audit"],
)
async def permit_trail(svc: Svc, permit_id: PermitId) -> list[AuditEntryRead]:
    await svc.get(permit_id)
    return [views.audit_entry_read(e) for e in await svc.trail(permit_id=permit_id)]


# -- audit, KPIs, certificates ------------------------------------------------------------------


@router.get(
    "/audit",
    response_model=list[AuditEntryRead],
    responses=ERRORS,
    tags=["audit"],
    dependencies=[Depends(auditor)],
)
async def audit_search(
    svc: Svc,
    permit: uuid.UUID | None = None,
    actor: str | None = None,
    action: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[AuditEntryRead]:
    """Search the trail."""
    found = await svc.trail(
        permit_id=permit, actor=actor, action=action, start=start, end=end, limit=limit
    )
    return [views.audit_entry_read(e) for e in found]


@router.get(
    "/audit/verify",
    response_model=AuditVerifyRead,
    tags=["audit"],
    dependencies=[Depends(auditor)],
)
async def audit_verify(svc: Svc) -> AuditVerifyRead:
    """Walk the hash chain; ``ok`` false names the first entry that does not hold."""
    return views.audit_report_read(await svc.verify_trail())


@router.get("/kpis", response_model=KpiRead, responses=ERRORS, tags=["kpis"])
async def kpis(
    svc: Svc,
    user: User,
    site: str | None = None,
    start: Annotated[dt.datetime | None, Query(description="Default: 30 days ago.")] = None,
    end: Annotated[dt.datetime | None, Query(description="Default: now.")] = None,
) -> KpiRead:
    """Approval lead time, high-risk share, repeat violations, alarms per permit-hour."""
    now = svc.clock()
    end = end or now
    start = start or end - dt.timedelta(days=30)
    site, sites = _site_scope(user, site)
    if site is None and sites is not None:
        if len(sites) != 1:
            raise InvalidQueryError("name the site (?site=) for KPIs: you belong to several")
        site = sites[0]
    return await svc.kpis(site_id=site, start=start, end=end)


@router.post(
    "/workers/{worker_id}/certificates",
    status_code=201,
    response_model=CertificateRead,
    responses=ERRORS,
    tags=["certificates"],
    dependencies=[Depends(registrar)],
)
async def add_certificate(
    svc: Svc, who: Who, worker_id: WorkerId, body: CertificateCreate
) -> CertificateRead:
    """Put a worker's special-operation certificate on file."""
    return views.certificate_read(
        await svc.add_certificate(actor=who, worker_id=worker_id, data=body)
    )


@router.get(
    "/workers/{worker_id}/certificates", response_model=list[CertificateRead], tags=["certificates"]
)
async def certificates(svc: Svc, worker_id: WorkerId) -> list[CertificateRead]:
    return [views.certificate_read(c) for c in await svc.certificates(worker_id)]
