"""The telemetry ingest: MQTT subscription → decode → plausibility → micro-batch → writer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import aiomqtt
import psycopg

from ingest import plausibility, topics
from ingest.config import IngestSettings, MqttSettings
from ingest.errors import DecodeError
from ingest.mqtt import backoff_s, client
from ingest.wire import SampleBatch, concat, decode
from ingest.writer import DeadLetter, TelemetryWriter

log = logging.getLogger(__name__)

BatchHook = Callable[[SampleBatch], Awaitable[None]]


@dataclass
class IngestStats:
    """Counters since start (exported as metrics)."""

    messages: int = 0
    samples_offered: int = 0
    samples_stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    write_errors: int = 0
    broker_connected: bool = False
    last_commit_monotonic: float = 0.0


@dataclass(slots=True)
class _Pending:
    """Decoded frames waiting for the next flush."""

    batches: list[SampleBatch] = field(default_factory=list)
    sites: dict[str, str] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    samples: int = 0
    since: float = 0.0

    def clear(self) -> None:
        self.batches, self.sites, self.dead, self.samples = [], {}, [], 0


class Ingest:
    """Consumes telemetry until closed. Use as an async context manager; it owns its tasks."""

    def __init__(
        self,
        *,
        mqtt_url: str,
        mqtt: MqttSettings,
        settings: IngestSettings,
        writer: TelemetryWriter,
        on_batch: BatchHook | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._url = mqtt_url
        self._mqtt = mqtt
        self._settings = settings
        self._writer = writer
        self._on_batch = on_batch
        self._clock_ms = clock_ms
        self._queue: asyncio.Queue[aiomqtt.Message | None] = asyncio.Queue(
            settings.queue_max_messages
        )
        self._tg: asyncio.TaskGroup | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.stats = IngestStats()

    async def __aenter__(self) -> Self:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._receiver = self._tg.create_task(self._receive(), name="ingest-receive")
        self._tg.create_task(self._process(), name="ingest-process")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        assert self._receiver is not None
        self._receiver.cancel()
        await self._queue.put(None)  # the processor flushes what it has, then ends
        await self._tg.__aexit__(et, e, tb)

    async def wait_subscribed(self, timeout_s: float = 10.0) -> None:
        """Return once the subscriptions are in place (tests and start-up ordering)."""
        async with asyncio.timeout(timeout_s):
            await self._subscribed.wait()

    # ------------------------------------------------------------------ receive

    async def _receive(self) -> None:
        attempt = 0
        while True:
            try:
                async with client(
                    self._url,
                    identifier=self._mqtt.client_id,
                    clean_session=False,
                    keepalive=self._mqtt.keepalive_s,
                ) as mqtt:
                    for flt in topics.telemetry_filters(self._mqtt.topic_root):
                        await mqtt.subscribe(flt, qos=self._mqtt.qos)
                    self.stats.broker_connected = True
                    self._subscribed.set()
                    attempt = 0
                    log.info("ingest subscribed", extra={"root": self._mqtt.topic_root})
                    async for message in mqtt.messages:
                        await self._queue.put(message)
            except aiomqtt.MqttError as exc:
                self.stats.broker_connected = False
                delay = backoff_s(attempt)
                attempt += 1
                log.warning("broker connection lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ process

    async def _process(self) -> None:
        pending = _Pending()
        while True:
            try:
                async with asyncio.timeout(self._flush_in(pending)):
                    message = await self._queue.get()
            except TimeoutError:
                await self._flush(pending)  # the batch is old enough
                continue
            if message is None:  # closing: store what is pending, then stop
                if pending.samples or pending.dead:
                    await self._flush(pending)
                return
            if not (pending.samples or pending.dead):
                pending.since = time.monotonic()
            self._accept(message, pending)
            if pending.samples >= self._settings.batch_max_samples:
                await self._flush(pending)

    def _flush_in(self, pending: _Pending) -> float | None:
        """Seconds until the pending batch is due, or None when nothing is pending."""
        if not (pending.samples or pending.dead):
            return None
        elapsed = time.monotonic() - pending.since
        return max(0.0, self._settings.batch_max_ms / 1000 - elapsed)

    def _accept(self, message: aiomqtt.Message, pending: _Pending) -> None:
        self.stats.messages += 1
        topic = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes) else b""
        parsed = topics.parse(self._mqtt.topic_root, topic)
        if parsed is None:
            self._dead(pending, DeadLetter(topic, payload, "not a v1 telemetry topic"))
            return
        if len(payload) > self._settings.max_payload_bytes:
            self._dead(
                pending,
                DeadLetter(topic, payload[:1024], f"payload of {len(payload)} bytes is too large"),
            )
            return
        try:
            batch = decode(payload, topic_device=parsed.device)
        except DecodeError as exc:
            self._dead(pending, DeadLetter(topic, payload, exc.reason))
            return
        verdict = plausibility.check(batch, now_ms=self._clock_ms(), settings=self._settings)
        if not verdict.all_ok:
            first = min(verdict.reasons)
            listed = "; ".join(f"#{i} {r}" for i, r in sorted(verdict.reasons.items())[:5])
            reason = f"{len(verdict.reasons)} of {len(batch)} samples implausible: {listed}"
            self._dead(pending, DeadLetter(topic, payload, reason, first))
            batch = batch.select(verdict.ok)
        if len(batch):
            pending.batches.append(batch)
            for device in batch.devices:
                pending.sites[device] = parsed.site
            pending.samples += len(batch)

    def _dead(self, pending: _Pending, letter: DeadLetter) -> None:
        pending.dead.append(letter)
        key = letter.reason.split(":")[0]
        self.stats.dead_letters_by_reason[key] = self.stats.dead_letters_by_reason.get(key, 0) + 1
        log.info("dead letter", extra={"topic": letter.topic, "reason": letter.reason})

    async def _flush(self, pending: _Pending) -> None:
        batch = concat(pending.batches)
        sites = [pending.sites[d] for d in batch.devices]
        attempt = 0
        while True:
            try:
                result = await self._writer.write(batch, sites=sites, dead_letters=pending.dead)
                break
            except (psycopg.Error, OSError) as exc:
                # The database is down or refused the batch: hold it and retry, never drop it.
                self.stats.write_errors += 1
                delay = backoff_s(attempt)
                attempt += 1
                log.warning("write failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
        self.stats.batches += 1
        self.stats.samples_offered += result.offered
        self.stats.samples_stored += result.inserted
        self.stats.duplicates += result.duplicates
        self.stats.dead_letters += result.dead_letters
        self.stats.last_commit_monotonic = time.monotonic()
        pending.clear()
        if self._on_batch is not None and len(batch):
            await self._on_batch(batch)
