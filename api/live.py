"""`/ws/live`: the control room's live stream — downsampled telemetry plus every event.

Protocol (JSON text frames):

- client → server, first: ``{"type": "subscribe", "sites": [...], "permits": [...],
  "devices": [...], "rate_hz": 1.0, "cursor": N}`` — empty lists mean "everything I may see";
  ``cursor`` (optional) resumes the event stream after event N. A later ``subscribe``
  replaces the filter. ``{"type": "pong"}`` answers pings.
- server → client: ``{"type": "subscribed", "cursor"}``; ``{"type": "telemetry", "ts_ms",
  "samples": {"device_id": [...], "ts_ms": [...], "flags": [...], "hr": [...], ...}}`` at
  most ``rate_hz`` times a second with the newest sample of each device that changed, as
  columns (one list per field, the same length; ``null`` = not measured); ``{"type":
  "event", "cursor", "event": {...}}`` for alarms, actions and permit changes, in order;
  ``{"type": "gap", "from", "to"}`` when a resume cursor is older than the server still
  holds; ``{"type": "ping"}``.

The ingest only writes each batch into one table of newest samples (`api.live_table`: a few
array operations, whatever the number of clients). Clients with the same filter and rate form
a group whose frame of a tick is built and encoded once and sent, as the same text, to all of
them; a client that missed a tick (its socket was still busy) gets the group's full frame
instead: a slow client is thinned, never queued. Events are encoded once and go through a
bounded queue per client: a client that cannot keep up is dropped (it resumes by cursor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
from fastapi import WebSocket
from starlette.websockets import WebSocketState

from api import _ws
from api._ws import Heartbeat
from api.live_table import LatestTable, LatestView
from ingest.wire import SampleBatch

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
class _Group:
    """Clients with the same filter and rate: one frame per tick, encoded once for all."""

    key: tuple[Any, ...]
    sub: Subscription
    allowed_sites: frozenset[str] | None
    members: int = 0
    slots: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    facts_version: int = -1  # the hub's facts version ``slots`` were computed for
    tick: int = -1  # the tick whose frames are cached
    prev_seq: int = 0  # the table's sequence at the tick before ``tick``
    seq: int = 0  # the table's sequence at ``tick``
    delta: str | None = None  # changed since ``prev_seq`` (clients that had the last frame)
    full: str | None = None  # every device (new or lagging clients), built on demand
    full_built: bool = False


@dataclass(slots=True, eq=False)
class _Client:
    sub: Subscription
    allowed_sites: frozenset[str] | None
    group: _Group
    events: asyncio.Queue[str | None]
    seen: int = 0  # the table's sequence at this client's last telemetry frame
    dropped: bool = False

    def restart(self) -> None:
        """Send every device's newest sample again (a new subscription)."""
        self.seen = 0


class LiveHub:
    """Fan-out of telemetry and events to control-room clients."""

    def __init__(self, *, queue_size: int = 1000, history: int = 10_000) -> None:
        self._queue_size = queue_size
        self._table = LatestTable()
        self._site: dict[str, str] = {}
        self._by_site: dict[str, set[str]] = {}  # site → its devices (a client reads only its own)
        self._permits: dict[str, tuple[str, ...]] = {}
        self._facts_version = 0  # bumped when a device's site or permits change, or a new one
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=history)
        self._cursor = 0
        self._clients: set[_Client] = set()
        self.dropped_clients = 0

    # ------------------------------------------------------------------ producers

    def publish_batch(self, batch: SampleBatch, sites: dict[str, str] | None = None) -> None:
        """Record the newest sample of each device in ``batch`` (the ingest's after-commit
        hook: a few array operations, whatever the number of clients)."""
        if sites:
            for device, site in sites.items():
                self._set_site(device, site)
        known = len(self._table)
        self._table.write(batch)
        if len(self._table) != known:
            self._facts_version += 1

    def latest(self) -> Mapping[str, dict[str, Any]]:
        """The newest sample of every device (rows built on access)."""
        return LatestView(self._table)

    def positions(self) -> dict[str, tuple[float, float]]:
        """The newest known position of every device that has one."""
        return self._table.positions()

    def set_device_facts(
        self, device: str, *, site: str | None = None, permits: Iterable[str] = ()
    ) -> None:
        """Where a device belongs (its site and the permits it is on), for filtering."""
        if site is not None:
            self._set_site(device, site)
        permits = tuple(permits)
        if self._permits.get(device) != permits:
            self._permits[device] = permits
            self._facts_version += 1

    def _set_site(self, device: str, site: str) -> None:
        old = self._site.get(device)
        if old == site:
            return
        if old is not None:
            self._by_site.get(old, set()).discard(device)
        self._site[device] = site
        self._by_site.setdefault(site, set()).add(device)
        self._facts_version += 1

    def publish_event(self, event: dict[str, Any]) -> int:
        """Send an alarm, action or permit change to every interested client; returns its cursor.

        The message is encoded once for all clients."""
        self._cursor += 1
        self._events.append((self._cursor, event))
        text: str | None = None
        for client in list(self._clients):
            if self._event_wanted(client, event):
                if text is None:
                    message = {"type": "event", "cursor": self._cursor, "event": event}
                    text = orjson.dumps(message).decode()
                self._offer(client, text)
        return self._cursor

    # ------------------------------------------------------------------ clients

    @contextlib.asynccontextmanager
    async def attach(
        self, sub: Subscription, allowed_sites: frozenset[str] | None
    ) -> AsyncIterator[_Client]:
        client = _Client(
            sub=sub,
            allowed_sites=allowed_sites,
            group=self._join(sub, allowed_sites),
            events=asyncio.Queue(self._queue_size),
        )
        self._clients.add(client)
        try:
            yield client
        finally:
            self._clients.discard(client)
            self._leave(client.group)

    def resubscribe(self, client: _Client, sub: Subscription) -> None:
        """Replace a client's filter; its next frame carries every device again."""
        self._leave(client.group)
        client.sub = sub
        client.group = self._join(sub, client.allowed_sites)
        client.restart()

    def _join(self, sub: Subscription, allowed_sites: frozenset[str] | None) -> _Group:
        key = (sub.sites, sub.permits, sub.devices, sub.rate_hz, allowed_sites)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key, sub, allowed_sites)
        group.members += 1
        return group

    def _leave(self, group: _Group) -> None:
        group.members -= 1
        if group.members <= 0:
            self._groups.pop(group.key, None)

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

    def telemetry_frame(self, client: _Client, tick: int) -> str | None:
        """The client's ``telemetry`` message for tick ``tick`` as JSON text (None: nothing
        changed).

        The frames of a tick are built once per group (filter and rate) and shared by its
        clients: the changes since the group's last tick for clients that got that frame,
        every device's newest sample for a new client or one that missed a tick (a slow
        client is thinned this way: it skips ticks and catches up with one full frame)."""
        group = client.group
        if group.tick != tick:
            slots = self._group_slots(group)
            group.prev_seq, group.seq = group.seq, self._table.seq
            group.delta = self._frame(self._table.changed_since(slots, group.prev_seq))
            group.tick, group.full, group.full_built = tick, None, False
        if client.seen == group.prev_seq and client.seen:
            text = group.delta
        else:
            if not group.full_built:
                slots = self._group_slots(group)
                group.full = self._frame(self._table.changed_since(slots, 0))
                group.full_built = True
            text = group.full
        client.seen = group.seq
        return text

    def _frame(self, slots: npt.NDArray[np.int64]) -> str | None:
        if not len(slots):
            return None
        message = {
            "type": "telemetry",
            "ts_ms": _ws.now_ms(),
            "samples": self._table.columns(slots),
        }
        return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY).decode()

    def _group_slots(self, group: _Group) -> npt.NDArray[np.int64]:
        """The table slots of the devices a group wants (recomputed when facts change)."""
        if group.facts_version != self._facts_version:
            wanted = (
                self._table.slot_of(d)
                for d in self._candidates(group.sub, group.allowed_sites)
                if self._device_wanted(group.sub, group.allowed_sites, d)
            )
            group.slots = np.array(sorted(s for s in wanted if s is not None), dtype=np.int64)
            group.facts_version = self._facts_version
        return group.slots

    def _candidates(self, sub: Subscription, allowed: frozenset[str] | None) -> Iterable[str]:
        """The devices a group may want: named ones, its sites' devices, or all (so a client
        of one site never walks the whole fleet)."""
        if sub.devices:
            return sub.devices
        sites: Iterable[str] | None = None
        if sub.sites:
            sites = sub.sites if allowed is None else sub.sites & allowed
        elif allowed is not None:
            sites = allowed
        if sites is None:
            return list(self._table.devices())
        return [d for site in sites for d in self._by_site.get(site, ())]

    @property
    def cursor(self) -> int:
        return self._cursor

    def _device_wanted(
        self, sub: Subscription, allowed: frozenset[str] | None, device: str
    ) -> bool:
        site = self._site.get(device)
        if allowed is not None and site not in allowed:
            return False
        return sub.wants(site=site, permits=self._permits.get(device, ()), device=device)

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

    def _offer(self, client: _Client, text: str) -> None:
        if client.dropped:
            return
        try:
            client.events.put_nowait(text)
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
                        hub.resubscribe(client, parse_subscription(message))
                    except ValueError as exc:
                        await _ws.send(ws, _ws.error(str(exc), "bad_subscription"))

        async def events() -> None:
            while (text := await client.events.get()) is not None:
                await ws.send_text(text)
            await ws.close(code=1013, reason="too slow")

        async def telemetry() -> None:
            while True:
                # On the wall-clock grid of the client's period, so that clients of the same
                # rate wake together and share frames.
                period = 1.0 / client.sub.rate_hz
                await asyncio.sleep(period - time.time() % period)
                frame = hub.telemetry_frame(client, round(time.time() / period))
                if frame is not None:
                    await ws.send_text(frame)

        await _ws.first_to_finish(receive(), events(), telemetry(), beat.run(ws))
