"""The acknowledgement adapter, pinned against a real broker: what aiomqtt's paho client does
when it is switched to manual acknowledgement. If an aiomqtt or paho upgrade changes this,
these tests fail and `ingest/acks.py` is the one place to fix."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest

from ingest import acks
from ingest.mqtt import client
from tests import services


@pytest.fixture
def mosquitto(broker: object) -> services.Mosquitto | str:
    """Persistent-session redelivery is a broker property: the embedded demo broker lacks it."""
    if isinstance(broker, services.EmbeddedBrokerThread):
        pytest.skip("the embedded amqtt broker does not redeliver to persistent sessions")
    assert isinstance(broker, services.Mosquitto | str)
    return broker


async def _receive(mqtt: aiomqtt.Client, n: int, timeout_s: float = 10) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with asyncio.timeout(timeout_s):
        async for message in mqtt.messages:
            got.append(message)
            if len(got) == n:
                break
    return got


async def _nothing_more(mqtt: aiomqtt.Client, wait_s: float = 1.0) -> list[object]:
    await asyncio.sleep(wait_s)
    return [m.payload for m in acks.take_queued(mqtt, 1000)]


async def test_manual_ack_unacknowledged_message_is_redelivered_acknowledged_is_not(
    mqtt_url: str, mosquitto: object
) -> None:
    """After a reconnect the persistent session gets back exactly the messages not acked."""
    topic = f"acks-{uuid.uuid4().hex[:8]}/t"
    cid = f"acks-{uuid.uuid4().hex[:8]}"
    sub = client(mqtt_url, identifier=cid, clean_session=False)
    acks.enable_manual_acks(sub)
    async with sub:
        await sub.subscribe(topic, qos=1)
        async with client(mqtt_url) as pub:
            for payload in (b"one", b"two", b"three"):
                await pub.publish(topic, payload, qos=1)
        got = await _receive(sub, 3)
        assert [m.payload for m in got] == [b"one", b"two", b"three"]
        assert acks.ack(sub, [got[0].mid, got[2].mid]) == 2
        await asyncio.sleep(0.3)  # let the PUBACKs leave before disconnecting
    again = client(mqtt_url, identifier=cid, clean_session=False)
    acks.enable_manual_acks(again)
    async with again:
        redelivered = await _receive(again, 1)
        assert [m.payload for m in redelivered] == [b"two"]
        assert acks.ack(again, [redelivered[0].mid]) == 1
        assert await _nothing_more(again) == []
    final = client(mqtt_url, identifier=cid, clean_session=True)
    async with final:
        assert await _nothing_more(final, 0.5) == []


async def test_default_client_acknowledges_on_receipt_so_nothing_is_redelivered(
    mqtt_url: str, mosquitto: object
) -> None:
    """Why the adapter exists: plain aiomqtt acks before the application stored anything."""
    topic = f"acks-{uuid.uuid4().hex[:8]}/t"
    cid = f"acks-{uuid.uuid4().hex[:8]}"
    async with client(mqtt_url, identifier=cid, clean_session=False) as sub:
        await sub.subscribe(topic, qos=1)
        async with client(mqtt_url) as pub:
            await pub.publish(topic, b"lost on a crash", qos=1)
        await _receive(sub, 1)
    async with client(mqtt_url, identifier=cid, clean_session=False) as again:
        assert await _nothing_more(again) == []


async def test_take_queued_returns_arrived_messages_in_order_without_waiting(
    mqtt_url: str, mosquitto: object
) -> None:
    """Bulk taking sees what the client already holds, in arrival order, and never blocks."""
    topic = f"acks-{uuid.uuid4().hex[:8]}/t"
    async with client(mqtt_url) as sub:
        await sub.subscribe(topic, qos=1)
        assert acks.take_queued(sub, 10) == []
        async with client(mqtt_url) as pub:
            for i in range(20):
                await pub.publish(topic, str(i).encode(), qos=1)
        async with asyncio.timeout(10):
            while acks.queued(sub) < 20:
                await asyncio.sleep(0.05)
        first = acks.take_queued(sub, 15)
        rest = acks.take_queued(sub, 15)
    assert [m.payload for m in first + rest] == [str(i).encode() for i in range(20)]
    assert len(first) == 15


async def test_ack_on_a_closed_connection_sends_nothing(mqtt_url: str) -> None:
    """Acknowledgements for a connection that has gone are not sent (the broker redelivers)."""
    sub = client(mqtt_url)
    acks.enable_manual_acks(sub)
    async with sub:
        pass
    assert acks.ack(sub, [1, 2, 3]) == 0


async def test_enable_manual_acks_refuses_a_bounded_incoming_queue(mqtt_url: str) -> None:
    """aiomqtt discards messages when its bounded queue is full: never with manual acks."""
    bounded = client(mqtt_url, max_queued_incoming_messages=10)
    with pytest.raises(ValueError, match="unbounded"):
        acks.enable_manual_acks(bounded)
