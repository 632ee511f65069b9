"""A wearable's MQTT 3.1.1 connection (asyncio): will, QoS 1 publish with PUBACK, subscribe,
keepalive, and an abrupt drop that makes the broker publish the will — what a device whose
network vanishes looks like from the broker's side."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

from firmware_sim import _packets as pk
from firmware_sim.errors import LinkLostError
from ingest.mqtt import BrokerAddress

Message = tuple[str, bytes]


class MqttLink:
    """One connection. Use as an async context manager (it owns its reader and pinger tasks).

    Leaving the block disconnects cleanly (no will) unless ``abort()`` was called or the
    connection was lost. After a loss every pending and later call raises ``LinkLostError``.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        will: pk.Will | None = None,
        clean_session: bool = False,
        keepalive_s: int = 30,
        timeout_s: float = 10.0,
    ) -> None:
        self.addr = BrokerAddress.from_url(url)
        self.client_id = client_id
        self.will = will
        self.clean_session = clean_session
        self.keepalive_s = keepalive_s
        self.timeout_s = timeout_s
        self.session_present = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[bytes | None]] = {}
        self._ping_task: asyncio.Task[None] | None = None
        self._incoming: asyncio.Queue[Message | None] = asyncio.Queue()
        self._lost: str | None = None
        self._pong = asyncio.Event()

    @property
    def lost(self) -> str | None:
        """Why the link is gone, or None while it is up."""
        return self._lost

    async def __aenter__(self) -> Self:
        try:
            async with asyncio.timeout(self.timeout_s):
                self._reader, self._writer = await asyncio.open_connection(
                    self.addr.host, self.addr.port
                )
                self._writer.write(
                    pk.connect(
                        self.client_id,
                        keepalive_s=self.keepalive_s,
                        clean_session=self.clean_session,
                        will=self.will,
                        username=self.addr.username,
                        password=self.addr.password,
                    )
                )
                await self._writer.drain()
                await self._read_connack()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            self._close_transport()
            raise LinkLostError(self.client_id, f"connect failed: {exc!r}") from exc
        except LinkLostError:
            self._close_transport()
            raise
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tg.create_task(self._read_loop(), name=f"mqtt-read-{self.client_id}")
        self._ping_task = self._tg.create_task(
            self._ping_loop(), name=f"mqtt-ping-{self.client_id}"
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._lost is None and self._writer is not None:
            with contextlib.suppress(OSError, ConnectionError):
                self._writer.write(pk.DISCONNECT_PACKET)
                await self._writer.drain()
            self._lose("closed")
        # The reader ends at end of stream and the pinger is cancelled by _lose, so the group
        # closes at once; the body's own exception (if any) propagates unwrapped.
        assert self._tg is not None
        await self._tg.__aexit__(None, None, None)

    async def _read_connack(self) -> None:
        assert self._reader is not None
        parser = pk.PacketReader()
        while True:
            data = await self._reader.read(4096)
            if not data:
                raise LinkLostError(self.client_id, "closed before CONNACK")
            for p in parser.feed(data):
                if p.kind != pk.CONNACK or len(p.body) < 2:
                    raise LinkLostError(
                        self.client_id, f"expected CONNACK, got packet type {p.kind}"
                    )
                if p.body[1]:
                    reason = pk.CONNACK_REASONS.get(p.body[1], f"code {p.body[1]}")
                    raise LinkLostError(self.client_id, f"connection refused: {reason}")
                self.session_present = bool(p.body[0] & 1)
                return

    # ------------------------------------------------------------------ calls

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish; with QoS 1 return once the broker has acknowledged (PUBACK)."""
        futures = self._send([(topic, payload, retain)], qos)
        for fut in futures:
            await self._await(fut)

    async def publish_many(self, items: list[tuple[str, bytes]], *, qos: int = 1) -> int:
        """Publish in order, pipelined; return how many, from the first, the broker
        acknowledged (all of them, unless the link was lost on the way)."""
        futures = self._send([(t, p, False) for t, p in items], qos)
        if not qos:
            return len(items)
        acked = 0
        for fut in futures:
            try:
                await self._await(fut)
            except LinkLostError:
                return acked
            acked += 1
        return acked

    async def subscribe(self, filters: list[str], *, qos: int = 1) -> None:
        """Subscribe (in batches of 100 filters per SUBSCRIBE packet)."""
        for k in range(0, len(filters), 100):
            pid = self._packet_id()
            fut = self._future(pid)
            self._write(pk.subscribe(pid, filters[k : k + 100], qos))
            codes = await self._await(fut)
            if any(c == 0x80 for c in codes):
                raise LinkLostError(self.client_id, f"subscription refused: {filters[k : k + 100]}")

    async def messages(self) -> AsyncIterator[Message]:
        """Incoming publishes (topic, payload) until the link is lost (then ``LinkLostError``)."""
        while True:
            item = await self._incoming.get()
            if item is None:
                raise LinkLostError(self.client_id, self._lost or "lost")
            yield item

    def abort(self) -> None:
        """Drop the connection without DISCONNECT: the broker publishes the will."""
        self._lose("aborted")

    # ------------------------------------------------------------------ internals

    def _send(
        self, items: list[tuple[str, bytes, bool]], qos: int
    ) -> list[asyncio.Future[bytes | None]]:
        if self._lost is not None:
            raise LinkLostError(self.client_id, self._lost)
        futures, chunks = [], []
        for topic, payload, retain in items:
            pid = self._packet_id() if qos else 0
            if qos:
                futures.append(self._future(pid))
            chunks.append(pk.publish(topic, payload, qos=qos, packet_id=pid, retain=retain))
        self._write(b"".join(chunks))
        return futures

    def _write(self, data: bytes) -> None:
        if self._lost is not None or self._writer is None:
            raise LinkLostError(self.client_id, self._lost or "not connected")
        try:
            self._writer.write(data)
        except (OSError, RuntimeError) as exc:
            self._lose(repr(exc))
            raise LinkLostError(self.client_id, repr(exc)) from exc

    async def _await(self, fut: asyncio.Future[bytes | None]) -> bytes:
        """The acknowledgement's body; ``LinkLostError`` when the link went down first."""
        try:
            if self._writer is not None and self._lost is None:
                await self._writer.drain()
            async with asyncio.timeout(self.timeout_s):
                result = await fut
        except TimeoutError:
            self._lose("no acknowledgement in time")
            raise LinkLostError(self.client_id, "no acknowledgement in time") from None
        except (OSError, ConnectionError) as exc:
            self._lose(repr(exc))
            raise LinkLostError(self.client_id, repr(exc)) from exc
        if result is None:
            raise LinkLostError(self.client_id, self._lost or "lost")
        return result

    def _packet_id(self) -> int:
        for _ in range(65_535):
            self._next_id = self._next_id % 65_535 + 1
            if self._next_id not in self._pending:
                return self._next_id
        raise LinkLostError(self.client_id, "65535 packets in flight")

    def _future(self, pid: int) -> asyncio.Future[bytes | None]:
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._pending[pid] = fut
        fut.add_done_callback(lambda _: self._pending.pop(pid, None))
        return fut

    async def _read_loop(self) -> None:
        assert self._reader is not None
        parser = pk.PacketReader()
        try:
            while self._lost is None:
                data = await self._reader.read(65_536)
                if not data:
                    self._lose("closed by the broker")
                    return
                for p in parser.feed(data):
                    self._dispatch(p)
        except (OSError, ConnectionError, ValueError) as exc:
            self._lose(repr(exc))

    def _dispatch(self, p: pk.Packet) -> None:
        if p.kind in (pk.PUBACK, pk.SUBACK):
            pid = int.from_bytes(p.body[:2], "big")
            fut = self._pending.get(pid)
            if fut is not None and not fut.done():
                fut.set_result(p.body[2:])
        elif p.kind == pk.PUBLISH:
            topic, payload, qos, pid = pk.parse_publish(p)
            if qos:
                with contextlib.suppress(LinkLostError):
                    self._write(pk.puback(pid))
            self._incoming.put_nowait((topic, payload))
        elif p.kind == pk.PINGRESP:
            self._pong.set()

    async def _ping_loop(self) -> None:
        if not self.keepalive_s:
            return
        while self._lost is None:
            await asyncio.sleep(self.keepalive_s / 2)
            self._pong.clear()
            with contextlib.suppress(LinkLostError):
                self._write(pk.PINGREQ_PACKET)
            try:
                async with asyncio.timeout(self.keepalive_s):
                    await self._pong.wait()
            except TimeoutError:
                self._lose("no PINGRESP")

    def _lose(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_result(None)  # None = lost; awaiting it raises LinkLostError
        self._incoming.put_nowait(None)
        self._close_transport()
        if self._ping_task is not None:
            self._ping_task.cancel()

    def _close_transport(self) -> None:
        if self._writer is not None:
            transport = self._writer.transport
            if self._lost == "closed":
                transport.close()
            else:
                transport.abort()
