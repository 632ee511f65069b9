"""The permit API against the real app (lifespan entered: PostgreSQL, broker, scheduler)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from api.auth import Principal, Role, TokenService
from api.settings import Settings
from permits.config import CertificateSettings, PermitSettings
from permits.models import GeoPoint, PermitType
from tests.permits import factories as f


@pytest.fixture
async def client(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    assert settings.database.url
    f.seed_sql(settings.database.url)
    csv = tmp_path / "registry.csv"
    csv.write_text(f.registry_csv_text(), encoding="utf-8")
    s = settings.model_copy(
        update={"permits": PermitSettings(certificates=CertificateSettings(registry_csv=csv))}
    )
    app = create_app(s)
    _TOKENS.append(TokenService.from_settings(s.auth))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        reader = hdr("viewer")  # requests without their own user read as this one
        async with httpx.AsyncClient(
            transport=transport, base_url="http://pp", headers=reader
        ) as c:
            yield c


#: Signs the test users' access tokens with the service's key (set by the `client` fixture).
_TOKENS: list[TokenService] = []


def hdr(user: str, lang: str = "en", *, sites: list[str] | None = None) -> dict[str, str]:
    """A logged-in user (every login role; their company positions decide the rest)."""
    principal = Principal(
        username=user, roles=frozenset(Role), sites=None if sites is None else frozenset(sites)
    )
    token = _TOKENS[-1].access_token(principal).token
    return {"Authorization": f"Bearer {token}", "Accept-Language": lang}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def body(ptype: PermitType, at: GeoPoint, host: str | None = None) -> dict[str, Any]:
    # Temporary electricity ends before the permit it feeds (10.8), whatever second it starts.
    hours = 2 if ptype is PermitType.YD else 3
    req = f.permit_create(ptype, start=now(), hours=hours, at=at, host=None, coordinator=None)
    data = req.model_dump(mode="json")
    data["host_permit_id"] = host
    if ptype is PermitType.DH:
        data["fields"]["daily_hours"] = "00:00-23:59"  # the test runs at any hour
        data["fields"]["location_class"] = "other"
    return data


async def ok(resp: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    out: dict[str, Any] = resp.json()
    return out


async def upload(c: httpx.AsyncClient, pid: str, step: dict[str, Any], seed: int) -> None:
    files = [f.PDF] if step["kind"] == "document" else [f.jpeg(seed), f.jpeg(seed + 1)]
    for content in files:
        name = "doc.pdf" if content is f.PDF else "photo.jpg"
        await ok(
            await c.post(
                f"/api/v1/permits/{pid}/evidence",
                headers=hdr("wat"),
                data={"step": step["id"]},
                files={"file": (name, content)},
            ),
            201,
        )


async def drive_to_active(
    c: httpx.AsyncClient, ptype: PermitType, at: GeoPoint, host: str | None = None, seed: int = 0
) -> dict[str, Any]:
    p = await ok(
        await c.post("/api/v1/permits", json=body(ptype, at, host), headers=hdr("app")), 201
    )
    pid = p["permit_id"]
    assert p["state"] == "draft"
    for step in p["evidence_steps"]:
        if step["phase"] == "submit":
            await upload(c, pid, step, seed)
    p = await ok(await c.post(f"/api/v1/permits/{pid}/submit", headers=hdr("app")))
    for step in p["route"]:
        p = await ok(
            await c.post(
                f"/api/v1/permits/{pid}/approve",
                headers=hdr(f.SIGNER[step["role"]]),
                json={"position": {"lat": at.lat, "lon": at.lon}},
            )
        )
    assert p["state"] == "approved"
    for i, step in enumerate(p["evidence_steps"]):
        if step["phase"] == "pre_start":
            await upload(c, pid, step, seed + 10 * (i + 1))
    if ptype in (PermitType.DH, PermitType.SX):
        gas = f.passing_gas(ptype, now()).model_dump(mode="json")
        t = await ok(
            await c.post(f"/api/v1/permits/{pid}/gas-tests", json=gas, headers=hdr("ana")), 201
        )
        assert t["passed"] is True
    await ok(
        await c.post(
            f"/api/v1/permits/{pid}/check-ins",
            headers=hdr("wat"),
            json={"position": {"lat": at.lat, "lon": at.lon}, "accuracy_m": 4},
        ),
        201,
    )
    start = {
        "confirmed_measures": [m["id"] for m in p["measures"]],
        "conditions": {"wind_force": 2},
    }
    p = await ok(await c.post(f"/api/v1/permits/{pid}/activate", headers=hdr("post"), json=start))
    assert p["state"] == "active"
    return p


async def drive_to_closed(c: httpx.AsyncClient, p: dict[str, Any], seed: int) -> dict[str, Any]:
    pid, at = p["permit_id"], p["location"]
    for i, step in enumerate(p["evidence_steps"]):
        if step["phase"] == "closure":
            await upload(c, pid, step, seed + 10 * (i + 1))
    done = {"closure_checks": [x["id"] for x in p["closure_checks"]], "position": at}
    p = await ok(await c.post(f"/api/v1/permits/{pid}/complete", headers=hdr("unit"), json=done))
    assert p["state"] == "completed"
    closer = "power" if p["type"] == "YD" else "unit"
    p = await ok(await c.post(f"/api/v1/permits/{pid}/close", headers=hdr(closer), json={}))
    assert p["state"] == "closed"
    return p


async def test_api_each_of_eight_types_draft_to_closed(client: httpx.AsyncClient) -> None:
    """A permit of each GB 30871 type goes draft → closed through the API on PostgreSQL."""
    c = client
    spots = {t: f.point_at(400.0 * (i + 1), bearing=45.0 * i) for i, t in enumerate(PermitType)}
    host = await drive_to_active(c, PermitType.DH, spots[PermitType.DH], seed=1000)
    yd = await drive_to_active(
        c, PermitType.YD, spots[PermitType.DH], host=host["permit_id"], seed=2000
    )
    closed = [await drive_to_closed(c, yd, 2500)]
    for i, t in enumerate(t for t in PermitType if t not in (PermitType.DH, PermitType.YD)):
        p = await drive_to_active(c, t, spots[t], seed=3000 + 500 * i)
        closed.append(await drive_to_closed(c, p, 3250 + 500 * i))
    closed.append(await drive_to_closed(c, host, 1500))
    assert sorted(p["type"] for p in closed) == sorted(str(t) for t in PermitType)
    page = await ok(await c.get("/api/v1/permits", params={"site": f.SITE, "state": "closed"}))
    assert page["count"] == 8
    verify = await ok(await c.get("/api/v1/audit/verify"))
    assert verify["ok"] is True
    assert verify["entries"] > 80
    trail = await ok(await c.get(f"/api/v1/permits/{host['permit_id']}/trail"))
    assert next(e["action"] for e in trail) == "create"
    assert [e["action"] for e in trail][-1] == "close"
    kpi = await ok(await c.get("/api/v1/kpis", params={"site": f.SITE}))
    assert kpi["permits"] == 8
    # The confined space, and the hot work when this test runs at night or on a rest day.
    assert kpi["high_risk_share"] == (1 + (host["level"] in ("special", "1"))) / 8
    assert kpi["approval_lead_time_min"]["n"] == 8


async def test_api_illegal_transition_409_names_rule_in_both_languages(
    client: httpx.AsyncClient,
) -> None:
    """Activating a draft: 409 with code, rule and clause, Chinese by default, English on ask."""
    p = await ok(
        await client.post(
            "/api/v1/permits", json=body(PermitType.MB, f.ORIGIN), headers=hdr("app", "zh")
        ),
        201,
    )
    url = f"/api/v1/permits/{p['permit_id']}/activate"
    zh = await client.post(url, json={}, headers=hdr("post", "zh"))
    assert zh.status_code == 409
    assert zh.json()["code"] == "invalid_transition"
    assert zh.json()["rule"] == "workflow.transition"
    assert "草稿" in zh.json()["detail"]
    en = await client.post(url + "?lang=en", json={}, headers=hdr("post", "zh"))
    assert "cannot go from 'draft' to 'active'" in en.json()["detail"]


async def test_api_rule_violation_422_lists_findings_with_clauses(
    client: httpx.AsyncClient,
) -> None:
    """An over-long hot-work permit: 422 with the cap, clause 5.1.5, in the asked language."""
    data = body(PermitType.DH, f.ORIGIN)
    data["fields"]["location_class"] = "pipe_rack"
    data["planned_end"] = (now() + dt.timedelta(hours=8, minutes=1)).isoformat()
    r = await client.post("/api/v1/permits", json=data, headers=hdr("app", "zh-CN,zh;q=0.9"))
    assert r.status_code == 422
    j = r.json()
    assert (j["code"], j["rule"], j["clause"]) == ("rule_violation", "validity.cap", "5.1.5")
    assert "超过" in j["detail"]
    assert j["findings"][0]["facts"]["cap_h"] == 8.0


async def test_api_no_login_401_no_position_403_other_site_403(client: httpx.AsyncClient) -> None:
    """No token: 401; a user without the company position: 403; another site's user: 403."""
    data = body(PermitType.MB, f.ORIGIN)
    anonymous = {"Authorization": ""}
    assert (await client.post("/api/v1/permits", json=data, headers=anonymous)).status_code == 401
    r = await client.post("/api/v1/permits", json=data, headers=hdr("nobody"))
    assert (r.status_code, r.json()["code"]) == (403, "not_authorized")
    r = await client.post("/api/v1/permits", json=data, headers=hdr("wat"))
    assert (r.status_code, r.json()["code"]) == (403, "not_authorized")
    r = await client.post("/api/v1/permits", json=data, headers=hdr("app", sites=["elsewhere"]))
    assert (r.status_code, r.json()["code"]) == (403, "site_forbidden")


async def test_api_separation_of_duties_403(client: httpx.AsyncClient) -> None:
    """One user, two steps of one route: the second is refused with 403."""
    data = body(PermitType.DH, f.ORIGIN)
    data["fields"].update({"location_class": "fire_explosion_area", "running_plant": True})
    p = await ok(await client.post("/api/v1/permits", json=data, headers=hdr("app")), 201)
    pid = p["permit_id"]
    await ok(
        await client.post(
            f"/api/v1/permits/{pid}/evidence",
            headers=hdr("app"),
            data={"step": "jsa"},
            files={"file": ("j.pdf", f.PDF)},
        ),
        201,
    )
    await ok(await client.post(f"/api/v1/permits/{pid}/submit", headers=hdr("app")))
    pos = {"position": {"lat": f.ORIGIN.lat, "lon": f.ORIGIN.lon}}
    await ok(await client.post(f"/api/v1/permits/{pid}/approve", headers=hdr("multi"), json=pos))
    r = await client.post(f"/api/v1/permits/{pid}/approve", headers=hdr("multi"), json=pos)
    assert (r.status_code, r.json()["rule"]) == (403, "sod.two_steps")


async def test_api_audit_verify_reports_tampering(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """GET /api/v1/audit/verify finds an audit row edited behind the application's back."""
    await ok(
        await client.post(
            "/api/v1/permits", json=body(PermitType.MB, f.ORIGIN), headers=hdr("app")
        ),
        201,
    )
    assert (await ok(await client.get("/api/v1/audit/verify")))["ok"] is True
    assert settings.database.url
    with psycopg.connect(settings.database.url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET body = replace(body, 'MB', 'DL') WHERE seq = 1")
    v = await ok(await client.get("/api/v1/audit/verify"))
    assert (v["ok"], v["first_bad_seq"]) == (False, 1)


async def test_api_templates_and_level_preview_bilingual(client: httpx.AsyncClient) -> None:
    """Templates and computed levels carry the standard's Chinese terms or English."""
    zh = await ok(await client.get("/api/v1/permits/templates/DH", params={"lang": "zh"}))
    en = await ok(await client.get("/api/v1/permits/templates/DH", params={"lang": "en"}))
    assert (zh["name"], en["name"]) == ("动火作业", "hot work")
    assert len(zh["measures"]) == 8
    start = f.T0
    r = await ok(
        await client.post(
            "/api/v1/permits/levels?lang=zh",
            json={
                "site_id": f.SITE,
                "type": "GC",
                "planned_start": start.isoformat(),
                "planned_end": (start + dt.timedelta(hours=2)).isoformat(),
                "fields": {"height_m": 5.0, "factors": ["slippery"]},
            },
        )
    )
    assert (r["level"], r["level_label"], r["validity_cap_h"]) == ("II", "Ⅱ级高处作业", 168.0)
    assert [x["role"] for x in r["route"]] == ["local_unit", "specialist_dept"]
