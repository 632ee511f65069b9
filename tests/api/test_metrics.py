"""/metrics and the ingest part of /healthz on a running service."""

from __future__ import annotations

import asyncio

import httpx

from api.settings import Settings
from ingest.mqtt import client
from ingest.topics import device_topic
from ingest.wire import encode_binary
from tests.factories import HTTP_TIMEOUT_S, samples


async def test_metrics_serves_ingest_counters_in_prometheus_text(
    live_app: str, settings: Settings, admin_headers: dict[str, str]
) -> None:
    """After traffic, /metrics reports it in the Prometheus text format."""
    assert settings.mqtt.url
    topic = device_topic(settings.mqtt.topic_root, "s1", "met-1", "telemetry")
    async with client(settings.mqtt.url) as mqtt:
        await mqtt.publish(topic, encode_binary(samples("met-1", 7)), qos=1)
        await mqtt.publish(topic, b"garbage", qos=1)
    async with httpx.AsyncClient(base_url=live_app, headers=admin_headers) as http:
        assert (await http.get("/metrics", headers={"Authorization": ""})).status_code == 401
        async with asyncio.timeout(30):
            while 'pp_ingest_samples_total{outcome="stored"} 7.0' not in (
                text := (r := await http.get("/metrics")).text
            ):
                await asyncio.sleep(0.1)
    assert r.headers["content-type"].startswith("text/plain")
    assert "pp_ingest_messages_total 2.0" in text
    assert 'pp_ingest_dead_letters_total{reason="encoding"} 1.0' in text
    assert "pp_ingest_broker_connected 1.0" in text
    assert "# TYPE pp_ingest_commit_seconds histogram" in text


async def test_healthz_reports_ingest_running_and_counts(live_app: str) -> None:
    """The ingest's state is part of health: running, writes ok, nothing unacknowledged."""
    async with httpx.AsyncClient(base_url=live_app, timeout=HTTP_TIMEOUT_S) as http:
        body = (await http.get("/healthz")).json()
    ingest = body["ingest"]
    assert ingest["running"] is True
    assert ingest["writes_ok"] is True
    assert ingest["unacked_messages"] == 0
    assert ingest["broker_reconnects"] == 0
