"""The wearable's own MQTT client against the real broker."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from api.embedded import free_port
from firmware_sim import LinkLostError, MqttLink
from firmware_sim._packets import Will
from tests.firmware_sim.factories import Recorder


async def test_mqtt_link_abort_makes_the_broker_publish_the_will(
    mqtt_url: str, topic_root: str
) -> None:
    """Dropping the connection without DISCONNECT gets the retained will published; a clean
    close does not."""
    will = Will(f"{topic_root}/d/status", orjson.dumps({"state": "offline"}))
    async with Recorder(mqtt_url, f"{topic_root}/#") as rec:
        async with MqttLink(
            mqtt_url, f"{topic_root[:11]}-a", will=will, clean_session=True
        ) as link:
            await link.publish(f"{topic_root}/d/telemetry", b"x", qos=1)
            link.abort()
            with pytest.raises(LinkLostError, match="aborted"):
                await link.publish(f"{topic_root}/d/telemetry", b"y", qos=1)
        await rec.wait_for(lambda: len(rec.on("/status")) == 1)
        async with MqttLink(mqtt_url, f"{topic_root[:11]}-b", will=will, clean_session=True):
            pass
        await asyncio.sleep(0.3)
    assert [p for _, p in rec.on("/status")] == [b'{"state":"offline"}']
    assert [p for _, p in rec.on("/telemetry")] == [b"x"]


async def test_mqtt_link_publish_many_is_acknowledged_in_order(
    mqtt_url: str, topic_root: str
) -> None:
    """Pipelined QoS 1 publishes are all acknowledged and arrive in order."""
    async with Recorder(mqtt_url, f"{topic_root}/#") as rec:
        async with MqttLink(mqtt_url, f"{topic_root[:11]}-p", clean_session=True) as link:
            acked = await link.publish_many([(f"{topic_root}/n", b"%d" % k) for k in range(500)])
        assert acked == 500
        await rec.wait_for(lambda: len(rec.messages) == 500)
    assert [int(p) for _, p, _ in rec.messages] == list(range(500))


async def test_mqtt_link_receives_subscribed_messages(mqtt_url: str, topic_root: str) -> None:
    """Subscriptions deliver (QoS 1, acknowledged by the link)."""
    async with MqttLink(mqtt_url, f"{topic_root[:11]}-s", clean_session=True) as link:
        await link.subscribe([f"{topic_root}/d/cmd"])
        async with MqttLink(mqtt_url, f"{topic_root[:11]}-q", clean_session=True) as other:
            await other.publish(f"{topic_root}/d/cmd", b"hello", qos=1)
        async with asyncio.timeout(5):
            async for topic, payload in link.messages():
                assert (topic, payload) == (f"{topic_root}/d/cmd", b"hello")
                break


async def test_mqtt_link_connect_refused_raises_link_lost() -> None:
    """Nothing listening: the connection attempt fails with LinkLostError, not a raw OSError."""
    with pytest.raises(LinkLostError, match="connect failed"):
        async with MqttLink(f"mqtt://127.0.0.1:{free_port()}", "nobody", timeout_s=2):
            pass
