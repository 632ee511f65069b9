"""`/ws/live` on a real WebSocket: filtering, downsampling, ordered events, resume, slow clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import uvicorn
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from api.embedded import free_port
from api.live import LiveHub, serve_live
from ingest.wire import MEASUREMENTS, SampleBatch
from tests.factories import samples


@pytest.fixture
async def live() -> AsyncIterator[tuple[LiveHub, str]]:
    hub = LiveHub(queue_size=5, history=3)
    app = FastAPI()

    @app.websocket("/ws/live")
    async def route(ws: WebSocket) -> None:
        sites = ws.query_params.get("sites")
        allowed = frozenset(sites.split(",")) if sites else None
        await serve_live(ws, hub=hub, allowed_sites=allowed, heartbeat_s=5)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield hub, f"ws://127.0.0.1:{port}/ws/live"
    server.should_exit = True
    await task


async def drain(ws: ClientConnection) -> None:
    async with asyncio.timeout(10):
        while True:
            await ws.recv()


async def subscribe(ws: ClientConnection, **sub: Any) -> dict[str, Any]:
    await ws.send(orjson.dumps({"type": "subscribe", **sub}).decode())
    return await recv(ws, "subscribed")


async def recv(ws: ClientConnection, kind: str, timeout_s: float = 5) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            msg: dict[str, Any] = orjson.loads(await ws.recv())
            if msg["type"] == kind:
                return msg


def batch(device: str, n: int = 3) -> SampleBatch:
    return SampleBatch.from_samples(samples(device, n))


async def test_live_telemetry_is_newest_sample_per_device_within_subscription(
    live: tuple[LiveHub, str],
) -> None:
    """Only subscribed devices, only their newest sample, at the client's rate."""
    hub, url = live
    hub.set_device_facts("a1", site="A")
    hub.set_device_facts("b1", site="B")
    async with connect(url) as ws:
        await subscribe(ws, sites=["A"], rate_hz=5)
        sent = samples("a1", 5)
        hub.publish_batch(SampleBatch.from_samples(sent))
        hub.publish_batch(batch("b1", 5))
        frame = await recv(ws, "telemetry")
    columns = frame["samples"]
    assert columns["device_id"] == ["a1"]
    assert columns["ts_ms"] == [sent[-1].ts_ms]
    assert columns["hr"] == [sent[-1].hr]
    assert set(columns) == {"device_id", "ts_ms", "flags", *MEASUREMENTS}


def test_hub_latest_table_keeps_the_newest_sample_and_ignores_late_ones() -> None:
    """The table holds each device's newest sample; a late (older) sample never replaces it."""
    hub = LiveHub()
    late = samples("a1", 4)
    hub.publish_batch(SampleBatch.from_samples(late[2:] + samples("b1", 1)))
    hub.publish_batch(SampleBatch.from_samples(late[:2]))
    row = hub.latest()["a1"]
    assert row["ts_ms"] == late[-1].ts_ms
    assert row["hr"] == pytest.approx(late[-1].hr, abs=1e-4)
    assert set(hub.latest()) == {"a1", "b1"}
    assert hub.latest().get("zz") is None
    lat, lon = late[-1].lat, late[-1].lon
    assert lat is not None
    assert lon is not None
    assert hub.positions()["a1"] == pytest.approx((lat, lon))


async def test_live_sites_outside_the_users_scope_are_never_sent(live: tuple[LiveHub, str]) -> None:
    """Per-site scoping is applied on the server, whatever the client asks for."""
    hub, url = live
    hub.set_device_facts("b2", site="B")
    async with connect(f"{url}?sites=A") as ws:
        await subscribe(ws, sites=["B"], rate_hz=10)
        hub.publish_batch(batch("b2"))
        hub.publish_event({"kind": "sos", "device_id": "b2"})
        with pytest.raises(TimeoutError):
            await recv(ws, "telemetry", timeout_s=0.5)


async def test_live_events_arrive_in_order_and_resume_from_cursor(
    live: tuple[LiveHub, str],
) -> None:
    """Events carry cursors; a reconnect with a cursor gets what it missed, or a gap notice."""
    hub, url = live
    async with connect(url) as ws:
        await subscribe(ws)
        c1 = hub.publish_event({"kind": "alarm", "n": 1})
        c2 = hub.publish_event({"kind": "alarm", "n": 2})
        got = [await recv(ws, "event"), await recv(ws, "event")]
    assert [g["cursor"] for g in got] == [c1, c2]
    for n in (3, 4, 5, 6):
        hub.publish_event({"kind": "alarm", "n": n})
    async with connect(url) as ws:
        await subscribe(ws, cursor=c2)
        gap = await recv(ws, "gap")
        replay = [await recv(ws, "event") for _ in range(3)]
    assert gap == {"type": "gap", "from": 3, "to": 3}
    assert [r["event"]["n"] for r in replay] == [4, 5, 6]


async def test_hub_client_not_draining_its_queue_is_dropped_others_keep_everything() -> None:
    """A full per-client queue drops that client only; publishing never waits."""
    from api.live import Subscription

    hub = LiveHub(queue_size=5)
    async with hub.attach(Subscription(), None) as slow, hub.attach(Subscription(), None) as fast:
        got = []
        for n in range(20):
            hub.publish_event({"kind": "alarm", "n": n})
            while not fast.events.empty():
                text = fast.events.get_nowait()
                assert text is not None
                got.append(orjson.loads(text)["event"]["n"])
        assert got == list(range(20))
        assert slow.events.get_nowait() is None  # the drop signal: its sender closes the socket
    assert hub.dropped_clients == 1


async def test_live_slow_reader_is_closed_while_fast_reader_gets_everything(
    live: tuple[LiveHub, str],
) -> None:
    """A client whose socket backs up is closed with 1013 (try again later, with a cursor)."""
    hub, url = live
    async with (
        connect(url, max_size=None, max_queue=1) as slow,
        connect(url, max_size=None) as fast,
    ):
        await subscribe(slow)
        await subscribe(fast)
        received = 0
        for n in range(600):
            blob = os.urandom(49_152).hex()  # incompressible: permessage-deflate cannot shrink it
            hub.publish_event({"kind": "alarm", "n": n, "blob": blob})
            await recv(fast, "event")
            received += 1
            if hub.dropped_clients:
                break
        assert hub.dropped_clients == 1
        with pytest.raises(ConnectionClosedError, match="1013"):
            await drain(slow)
    assert received < 600


@pytest.mark.parametrize(
    "first",
    [{"type": "hello"}, {"type": "subscribe", "rate_hz": 100}, {"type": "subscribe", "sites": "A"}],
)
async def test_live_bad_subscription_is_refused_with_reason(
    live: tuple[LiveHub, str], first: dict[str, Any]
) -> None:
    """The first message must be a valid subscribe."""
    _, url = live
    async with connect(url) as ws:
        await ws.send(orjson.dumps(first).decode())
        err = await recv(ws, "error")
    assert err["code"] == "bad_subscription"


async def test_hub_clients_of_one_filter_share_one_frame_with_only_changed_devices() -> None:
    """Frames are built once per filter and tick; a device is sent again only after it changed;
    a client that missed a tick (slow) or resubscribed gets every device again."""
    from api.live import Subscription

    hub = LiveHub()
    for device, site in (("a1", "A"), ("a2", "A"), ("b1", "B")):
        hub.set_device_facts(device, site=site)
    sub = Subscription(sites=frozenset({"A"}))
    async with hub.attach(sub, None) as one, hub.attach(sub, None) as two:
        hub.publish_batch(SampleBatch.from_samples(samples("a1", 2) + samples("a2", 2)))
        hub.publish_batch(batch("b1"))
        first = hub.telemetry_frame(one, 1)
        assert first is not None
        assert hub.telemetry_frame(two, 1) is first  # the same text object: built once
        assert sorted(orjson.loads(first)["samples"]["device_id"]) == ["a1", "a2"]
        assert hub.telemetry_frame(one, 2) is None  # nothing changed since
        hub.publish_batch(batch("a1", 1))
        assert hub.telemetry_frame(one, 3) is not None  # two misses tick 3 (too slow)
        hub.publish_batch(batch("a2", 1))
        again = hub.telemetry_frame(one, 4)
        assert again is not None
        assert orjson.loads(again)["samples"]["device_id"] == ["a2"]
        lagging = hub.telemetry_frame(two, 4)  # not the changes since tick 3: everything
        assert lagging is not None
        assert sorted(orjson.loads(lagging)["samples"]["device_id"]) == ["a1", "a2"]
        assert hub.telemetry_frame(two, 5) is None  # caught up
        hub.resubscribe(one, Subscription(sites=frozenset({"B"})))
        resent = hub.telemetry_frame(one, 5)
        assert resent is not None
        assert orjson.loads(resent)["samples"]["device_id"] == ["b1"]
