"""The one adapter that reaches into aiomqtt's internals: acknowledgement after commit, and
taking already-received messages in bulk.

aiomqtt 2.5 acknowledges a QoS 1 message as soon as it is queued, before the application has
stored it, and has no public switch for that. Its underlying paho-mqtt client does
(``manual_ack_set`` / ``ack``), reachable as ``Client._client``. Everything that touches
aiomqtt's private attributes lives here, pinned to aiomqtt==2.5.1 / paho-mqtt==2.2.0, and
``tests/ingest/test_acks.py`` pins the behaviour against a real broker: an unacknowledged
message is redelivered to the persistent session, an acknowledged one is not. If an upgrade
breaks that test, fix it here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiomqtt
import paho.mqtt.client as paho

__all__ = ["ack", "enable_manual_acks", "queued", "take_queued"]


def enable_manual_acks(client: aiomqtt.Client) -> None:
    """Stop ``client`` from acknowledging QoS 1 messages on receipt; `ack` does it instead.

    Call before entering the client: a persistent session's backlog arrives with the CONNACK.
    An unbounded incoming queue is required (aiomqtt *discards* messages when a bounded one is
    full); what bounds it instead is the broker's in-flight window, since nothing is
    acknowledged before it is committed.
    """
    if client._queue.maxsize != 0:
        raise ValueError("manual acks need aiomqtt's unbounded incoming queue")
    client._client.manual_ack_set(True)


def ack(client: aiomqtt.Client, mids: Iterable[int]) -> int:
    """Send PUBACK for each QoS 1 message id, in the order given (MQTT 3.1.1 §4.6 wants the
    order of receipt). Returns how many were handed to the socket; 0 when not connected."""
    inner = client._client
    if not inner.is_connected():
        return 0
    sent = 0
    for mid in mids:
        if inner.ack(mid, 1) == paho.MQTT_ERR_SUCCESS:
            sent += 1
    return sent


def take_queued(client: aiomqtt.Client, limit: int) -> list[aiomqtt.Message]:
    """Up to ``limit`` messages that have already arrived, without waiting (saves aiomqtt's
    per-message task and ``asyncio.wait`` when a backlog streams in)."""
    out: list[aiomqtt.Message] = []
    queue = client._queue
    while len(out) < limit:
        try:
            out.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            break
    return out


def queued(client: aiomqtt.Client) -> int:
    """Messages received by the client and not yet taken by the ingest."""
    return len(client.messages)
