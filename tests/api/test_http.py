"""The HTTP API on a running service: health, telemetry reads and error replies (telemetry
reads as a logged-in control-room user; see tests/security for who may read what)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from api.settings import Settings
from ingest.mqtt import client
from ingest.topics import device_topic
from ingest.wire import encode_binary
from tests.factories import HTTP_TIMEOUT_S, samples


async def _publish(settings: Settings, device: str, n: int) -> list[int]:
    assert settings.mqtt.url
    rows = samples(device, n)
    async with client(settings.mqtt.url) as mqtt:
        await mqtt.publish(
            device_topic(settings.mqtt.topic_root, "s1", device, "telemetry"),
            encode_binary(rows),
            qos=1,
        )
    return [r.ts_ms for r in rows]


async def _until_latest(http: httpx.AsyncClient, device: str) -> httpx.Response:
    async with asyncio.timeout(30):
        while (r := await http.get(f"/api/v1/devices/{device}/latest")).status_code == 404:
            await asyncio.sleep(0.1)
    return r


async def test_healthz_reports_broker_database_and_storage_form(live_app: str) -> None:
    """A healthy service says ok and how telemetry is stored."""
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        r = await http.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["broker"]["ok"]
    assert body["database"]["ok"]
    assert body["storage_form"] in ("native-partitions", "timescaledb")


async def test_latest_returns_newest_sample_of_device(
    live_app: str, settings: Settings, admin_headers: dict[str, str]
) -> None:
    """After publishing, the newest sample is served with all its fields."""
    ts = await _publish(settings, "api-1", 5)
    async with httpx.AsyncClient(base_url=live_app, headers=admin_headers) as http:
        r = await _until_latest(http, "api-1")
    assert r.status_code == 200
    body = r.json()
    assert body["ts_ms"] == ts[-1]
    assert body["seq"] == 5
    assert body["spo2"] == 98.0


async def test_telemetry_window_returns_samples_in_order_and_truncates(
    live_app: str, settings: Settings, admin_headers: dict[str, str]
) -> None:
    """The window is [start, end), oldest first; `limit` cuts and says so."""
    ts = await _publish(settings, "api-2", 10)
    async with httpx.AsyncClient(base_url=live_app, headers=admin_headers) as http:
        await _until_latest(http, "api-2")
        params = {"device": "api-2", "start": _iso(ts[2]), "end": _iso(ts[8])}
        r = await http.get("/api/v1/telemetry", params=params)
        cut = await http.get("/api/v1/telemetry", params={**params, "limit": 2})
    assert r.status_code == 200
    assert [s["ts_ms"] for s in r.json()["samples"]] == ts[2:8]
    assert r.json()["truncated"] is False
    assert cut.json()["count"] == 2
    assert cut.json()["truncated"] is True


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat()


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/devices/nobody/latest", 404, "not_found"),
        ("/api/v1/devices/bad%20id/latest", 422, "validation_error"),
        ("/api/v1/telemetry?device=d1", 422, "validation_error"),
        (
            "/api/v1/telemetry?device=d1&start=yesterday&end=2026-01-01T00:00:00Z",
            422,
            "validation_error",
        ),
        (
            "/api/v1/telemetry?device=d1&start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            422,
            "invalid_query",
        ),
        (
            "/api/v1/telemetry?device=d1&start=2026-01-01T00:00:00Z&end=2026-03-01T00:00:00Z",
            422,
            "invalid_query",
        ),
        (
            "/api/v1/telemetry?device=d1&start=2026-01-01T00:00:00&end=2026-01-01T01:00:00",
            422,
            "invalid_query",
        ),
        (
            "/api/v1/telemetry?device=ghost&start=2026-01-01T00:00:00Z&end=2026-01-01T01:00:00Z",
            404,
            "not_found",
        ),
        (
            "/api/v1/telemetry?device=d1&start=2026-01-01T00:00:00Z&end=2026-01-01T01:00:00Z&limit=0",
            422,
            "validation_error",
        ),
        ("/api/v1/nothing-here", 404, "not_found"),
    ],
)
async def test_invalid_requests_get_4xx_with_detail_and_code(
    live_app: str, path: str, status: int, code: str, admin_headers: dict[str, str]
) -> None:
    """Every bad request is told what is wrong in `{"detail", "code"}`."""
    async with httpx.AsyncClient(base_url=live_app, headers=admin_headers) as http:
        r = await http.get(path)
    assert r.status_code == status
    body = r.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]


async def test_openapi_schema_is_served(live_app: str) -> None:
    """`/docs` and the OpenAPI schema describe the API."""
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        schema = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
    assert "/api/v1/telemetry" in schema["paths"]
    assert docs.status_code == 200
