"""`/ws/live`: the control room's live stream — downsampled telemetry plus every event.

Protocol (JSON text frames):

- client → server, first: ``{"type": "subscribe", "sites": [...], "permits": [...],
  "devices": [...], "rate_hz": 1.0, "cursor": N}`` — empty lists mean "everything I may see";
  ``cursor`` (optional) resumes the event stream after event N. A later ``subscribe``
  replaces the filter. ``{"type": "pong"}`` answers pings.
- server → client: ``{"type": "subscribed", "cursor"}``; ``{"type": "telemetry", "ts_ms",
  "samples": [...]}`` at most ``rate_hz`` times a second with the newest sample of each
  device that changed; ``{"type": "event", "cursor", "event": {...}}`` for alarms, actions
  and permit changes, in order; ``{"type": "gap", "from", "to"}`` when a resume cursor is
  older than the server still holds; ``{"type": "ping"}``.

The ingest only updates one "latest sample" table per batch; each client's own task reads it
at the client's rate, so a slow or fast client costs the ingest nothing. Events go through a
bounded queue per client: a client that cannot keep up is dropped (it resumes by cursor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import WebSocket
from starlette.websockets import WebSocketState

from api import _ws
from api._ws import Heartbeat
from ingest.wire import MEASUREMENTS, SampleBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Subscription:
    """What one client wants; empty sets mean no restriction on that axis."""

    sites: frozenset[str] = frozenset()
    permits: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    rate_hz: float = 1.0

    def wants(self, *, site: str | None, permits: Iterable[str], device: str | None) -> bool:
        if self.sites and site not in self.sites:
            return False
        if self.permits and not (self.permits & set(permits)):
            return False
        return not (self.devices and device not in self.devices)


@dataclass(slots=True, eq=False)
class _Client:
    sub: Subscription
    allowed_sites: frozenset[str] | None
    events: asyncio.Queue[dict[str, Any] | None]
    seen: int = 0  # the hub's change sequence at this client's last telemetry frame
    dropped: bool = False

    def restart(self) -> None:
        """Send every device's newest sample again (a new subscription)."""
        self.seen = 0


class LiveHub:
    """Fan-out of telemetry and events to control-room clients."""

    def __init__(self, *, queue_size: int = 1000, history: int = 10_000) -> None:
        self._queue_size = queue_size
        self._latest: dict[str, dict[str, Any]] = {}
        self._encoded: dict[str, bytes] = {}  # JSON of a latest row, encoded once for all clients
        self._changed: dict[str, int] = {}  # device → change sequence of its newest sample
        self._seq = 0  # bumped by every device update
        self._frames: dict[tuple[Any, ...], tuple[str | None, int]] = {}  # shared this _seq
        self._frames_seq = -1
        self._site: dict[str, str] = {}
        self._by_site: dict[str, set[str]] = {}  # site → its devices (a client reads only its own)
        self._permits: dict[str, tuple[str, ...]] = {}
        self._events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=history)
        self._cursor = 0
        self._clients: set[_Client] = set()
        self.dropped_clients = 0

    # ------------------------------------------------------------------ producers

    def publish_batch(self, batch: SampleBatch, sites: dict[str, str] | None = None) -> None:
        """Record the newest sample of each device in ``batch`` (the ingest's after-commit hook)."""
        if not len(batch):
            return
        if sites:
            for device, site in sites.items():
                self._set_site(device, site)
        order = np.lexsort((batch.seq, batch.ts_ms))
        last = {int(batch.dev[i]): int(i) for i in order.tolist()}  # newest per device wins
        columns = {m: getattr(batch, m) for m in MEASUREMENTS}
        for dev, i in last.items():
            device = batch.devices[dev]
            ts = int(batch.ts_ms[i])
            current = self._latest.get(device)
            if current is not None and current["ts_ms"] > ts:
                continue  # a late replay does not move the live picture back in time
            row: dict[str, Any] = {"device_id": device, "ts_ms": ts, "flags": int(batch.flags[i])}
            for m, col in columns.items():
                v = float(col[i])
                row[m] = None if math.isnan(v) else round(v, 6)
            self._latest[device] = row
            self._encoded.pop(device, None)
            self._seq += 1
            self._changed[device] = self._seq

    def latest(self) -> dict[str, dict[str, Any]]:
        """The newest sample of every device (shared rows: do not modify)."""
        return self._latest

    def positions(self) -> dict[str, tuple[float, float]]:
        """The newest known position of every device that has one."""
        return {
            d: (row["lat"], row["lon"])
            for d, row in self._latest.items()
            if row.get("lat") is not None and row.get("lon") is not None
        }

    def set_device_facts(
        self, device: str, *, site: str | None = None, permits: Iterable[str] = ()
    ) -> None:
        """Where a device belongs (its site and the permits it is on), for filtering."""
        self._frames.clear()
        if site is not None:
            self._set_site(device, site)
        self._permits[device] = tuple(permits)

    def _set_site(self, device: str, site: str) -> None:
        old = self._site.get(device)
        if old == site:
            return
        if old is not None:
            self._by_site.get(old, set()).discard(device)
        self._site[device] = site
        self._by_site.setdefault(site, set()).add(device)

    def publish_event(self, event: dict[str, Any]) -> int:
        """Send an alarm, action or permit change to every interested client; returns its cursor."""
        self._cursor += 1
        self._events.append((self._cursor, event))
        message = {"type": "event", "cursor": self._cursor, "event": event}
        for client in list(self._clients):
            if self._event_wanted(client, event):
                self._offer(client, message)
        return self._cursor

    # ------------------------------------------------------------------ clients

    @contextlib.asynccontextmanager
    async def attach(
        self, sub: Subscription, allowed_sites: frozenset[str] | None
    ) -> AsyncIterator[_Client]:
        client = _Client(
            sub=sub, allowed_sites=allowed_sites, events=asyncio.Queue(self._queue_size)
        )
        self._clients.add(client)
        try:
            yield client
        finally:
            self._clients.discard(client)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def replay(self, client: _Client, after: int) -> list[dict[str, Any]]:
        """Events after cursor ``after`` this client wants; a gap message first if lost."""
        out: list[dict[str, Any]] = []
        oldest = self._events[0][0] if self._events else self._cursor + 1
        if after + 1 < oldest:
            out.append({"type": "gap", "from": after + 1, "to": oldest - 1})
        for cursor, event in self._events:
            if cursor > after and self._event_wanted(client, event):
                out.append({"type": "event", "cursor": cursor, "event": event})
        return out

    def telemetry_for(self, client: _Client) -> list[dict[str, Any]]:
        """Newest samples changed since this client's last frame, within its subscription."""
        out = [self._latest[d] for d in self._changed_for(client)]
        client.seen = self._seq
        return out

    def telemetry_frame(self, client: _Client, ts_ms: int) -> str | None:
        """The client's next ``telemetry`` message as JSON text (None: nothing changed).

        Clients that ask at the same moment with the same filter and the same last frame get
        the same text, built once; each sample is encoded once however many frames carry it.
        (Clients of one rate tick together: `serve_live` aligns them to the wall clock.)"""
        if self._frames_seq != self._seq:
            self._frames.clear()
            self._frames_seq = self._seq
        sub = client.sub
        key = (sub.sites, sub.permits, sub.devices, client.allowed_sites, client.seen)
        cached = self._frames.get(key)
        if cached is None:
            parts = []
            for device in self._changed_for(client):
                encoded = self._encoded.get(device)
                if encoded is None:
                    encoded = self._encoded[device] = orjson.dumps(self._latest[device])
                parts.append(encoded)
            text = None
            if parts:
                head = b'{"type":"telemetry","ts_ms":%d,"samples":[' % ts_ms
                text = (head + b",".join(parts) + b"]}").decode()
            cached = self._frames[key] = (text, self._seq)
        client.seen = cached[1]
        return cached[0]

    def _changed_for(self, client: _Client) -> list[str]:
        seen = client.seen
        return [
            d
            for d in self._candidates(client)
            if self._changed.get(d, 0) > seen and self._device_wanted(client, d)
        ]

    def _candidates(self, client: _Client) -> Iterable[str]:
        """The devices a client may want: named ones, its sites' devices, or all (so a client
        of one site never walks the whole fleet each tick)."""
        if client.sub.devices:
            return client.sub.devices
        sites: Iterable[str] | None = None
        if client.sub.sites:
            sites = client.sub.sites
            if client.allowed_sites is not None:
                sites = client.sub.sites & client.allowed_sites
        elif client.allowed_sites is not None:
            sites = client.allowed_sites
        if sites is None:
            return list(self._changed)
        return [d for site in sites for d in self._by_site.get(site, ())]

    @property
    def cursor(self) -> int:
        return self._cursor

    def _device_wanted(self, client: _Client, device: str) -> bool:
        site = self._site.get(device)
        if client.allowed_sites is not None and site not in client.allowed_sites:
            return False
        return client.sub.wants(site=site, permits=self._permits.get(device, ()), device=device)

    def _event_wanted(self, client: _Client, event: dict[str, Any]) -> bool:
        device = event.get("device_id")
        site = event.get("site_id") or (self._site.get(device) if device else None)
        if client.allowed_sites is not None and site not in client.allowed_sites:
            return False
        permits = (
            [event["permit_id"]]
            if event.get("permit_id")
            else list(self._permits.get(device or "", ()))
        )
        if client.sub.permits and not (client.sub.permits & set(permits)):
            return False
        if client.sub.sites and site not in client.sub.sites:
            return False
        return not (client.sub.devices and device is not None and device not in client.sub.devices)

    def _offer(self, client: _Client, message: dict[str, Any]) -> None:
        if client.dropped:
            return
        try:
            client.events.put_nowait(message)
        except asyncio.QueueFull:
            client.dropped = True
            self.dropped_clients += 1
            while not client.events.empty():
                client.events.get_nowait()
            client.events.put_nowait(None)  # the client's sender closes the connection


def parse_subscription(message: dict[str, Any]) -> Subscription:
    """A subscription from a client message; raises ValueError with the reason."""

    def names(key: str) -> frozenset[str]:
        value = message.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"'{key}' must be a list of strings")
        return frozenset(value)

    rate = message.get("rate_hz", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.01 <= rate <= 10:
        raise ValueError("'rate_hz' must be a number from 0.01 to 10")
    return Subscription(
        sites=names("sites"),
        permits=names("permits"),
        devices=names("devices"),
        rate_hz=float(rate),
    )


async def serve_live(
    ws: WebSocket,
    *,
    hub: LiveHub,
    allowed_sites: frozenset[str] | None,
    heartbeat_s: float = 15.0,
) -> None:
    """Run one authenticated control-room connection until it closes."""
    if ws.application_state == WebSocketState.CONNECTING:
        await ws.accept()
    first = await _ws.receive(ws)
    try:
        if first is None or first.get("type") != "subscribe":
            raise ValueError("the first message must be a subscribe")
        sub = parse_subscription(first)
    except ValueError as exc:
        await _ws.send(ws, _ws.error(str(exc), "bad_subscription"))
        await ws.close(code=1008)
        return
    async with hub.attach(sub, allowed_sites) as client:
        await _ws.send(ws, {"type": "subscribed", "cursor": hub.cursor})
        cursor = first.get("cursor")
        if isinstance(cursor, int) and not isinstance(cursor, bool):
            for message in hub.replay(client, cursor):
                await _ws.send(ws, message)
        beat = Heartbeat(heartbeat_s)

        async def receive() -> None:
            while True:
                message = await _ws.receive(ws)
                if message is None:
                    continue
                if message.get("type") == "pong":
                    beat.pong()
                elif message.get("type") == "subscribe":
                    try:
                        client.sub = parse_subscription(message)
                        client.restart()
                    except ValueError as exc:
                        await _ws.send(ws, _ws.error(str(exc), "bad_subscription"))

        async def events() -> None:
            while (message := await client.events.get()) is not None:
                await _ws.send(ws, message)
            await ws.close(code=1013, reason="too slow")

        async def telemetry() -> None:
            while True:
                # On the wall-clock grid of the client's period, so that clients of the same
                # rate wake together and share frames.
                period = 1.0 / client.sub.rate_hz
                await asyncio.sleep(period - time.time() % period)
                frame = hub.telemetry_frame(client, _ws.now_ms())
                if frame is not None:
                    await ws.send_text(frame)

        await _ws.first_to_finish(receive(), events(), telemetry(), beat.run(ws))
