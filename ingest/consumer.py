"""The telemetry ingest: MQTT → micro-batch → PostgreSQL → acknowledgement → detector hook.

Four tasks joined by bounded hand-offs:

``receive``
    holds the broker connection (persistent session, QoS 1, manual acknowledgement), takes
    messages and adds them to the micro-batch being filled. When that batch is full it waits:
    nothing more is taken, nothing more is acknowledged, and the broker's in-flight window
    stops the flow — the broker holds the rest.
``decode``
    takes the batch once the writer has room for the next job (so batches grow while the
    previous one commits), and decodes, checks, de-duplicates and orders it while the writer
    is busy with the one before.
``write``
    commits a job's samples and dead letters atomically, and only then acknowledges its
    messages, on the connection they came in on. A database outage holds the job and retries
    with capped, jittered backoff; a message whose *content* the database refuses is isolated
    by bisection and dead-lettered, so it cannot stall the others.
``detect``
    calls ``on_batch`` with the samples that were new (never a duplicate), from a bounded
    queue; a slow hook slows the writer, never grows memory.

Delivery: at least once from the broker, exactly once into ``telemetry`` (unique on device,
time and sequence), at most once into ``on_batch`` (a crash between commit and hook skips it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self

import aiomqtt
import numpy as np
import psycopg
from paho.mqtt.reasoncodes import ReasonCode

from ingest import acks, topics
from ingest.batcher import BatchBuilder, Job, Link, Registry
from ingest.config import IngestSettings, MqttSettings
from ingest.metrics import Depths, IngestMetrics, IngestStats
from ingest.mqtt import backoff_s, client
from ingest.wire import SampleBatch
from ingest.writer import DeadLetter, TelemetryWriter, WriteResult, is_data_fault

log = logging.getLogger(__name__)

BatchHook = Callable[[SampleBatch], Awaitable[None]]

__all__ = ["BatchHook", "Ingest", "IngestStats"]


class Ingest:
    """Consumes telemetry until closed. Use as an async context manager; it owns its tasks.

    Args:
        mqtt_url: the broker.
        mqtt: connection settings (client id of the persistent session, topic root, QoS).
        settings: batching, bounds, rate limits, plausibility.
        writer: stores micro-batches.
        on_batch: called after each commit with the samples that were new, time-ordered.
        clock_ms: the server clock for plausibility (tests pin it).
        metrics: where to export metrics (a private registry by default).
    """

    def __init__(
        self,
        *,
        mqtt_url: str,
        mqtt: MqttSettings,
        settings: IngestSettings,
        writer: TelemetryWriter,
        on_batch: BatchHook | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self._url = mqtt_url
        self._mqtt = mqtt
        self._settings = settings
        self._writer = writer
        self._on_batch = on_batch
        self._clock_ms = clock_ms
        self.stats = IngestStats()
        self.metrics = metrics if metrics is not None else IngestMetrics()
        self.metrics.watch(self.stats, self.depths)
        self._registry = Registry(settings)
        self._builder = self._new_builder()
        self._link: Link | None = None
        self._generation = 0
        self._attempt = 0
        self._received = 0
        self._settled = 0
        self._wake = asyncio.Event()  # writer: something to do
        self._taken = asyncio.Event()  # receiver: the writer took the batch
        self._hurry = asyncio.Event()  # writer: stop lingering (batch full, or closing)
        self._closing = asyncio.Event()
        self._reading_done = False
        self._drained = asyncio.Event()  # everything taken is committed and acknowledged
        self._finished = asyncio.Event()  # ... and handed to the hook
        self._subscribed = asyncio.Event()
        self._jobs: asyncio.Queue[Job | None] = asyncio.Queue(1)
        self._slot = asyncio.Event()  # decode: the writer has taken the last job
        self._slot.set()
        self._job_waiting = 0  # messages in the job waiting for the writer
        self._hook_queue: asyncio.Queue[SampleBatch | None] = asyncio.Queue(
            settings.hook_queue_batches
        )
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifetime

    async def __aenter__(self) -> Self:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._start(self._receive(), "ingest-receive")
        self._start(self._decode(), "ingest-decode")
        self._start(self._write(), "ingest-write")
        if self._on_batch is not None:
            self._start(self._detect(), "ingest-detect")
        return self

    def _start(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        assert self._tg is not None
        self._tasks.append(self._tg.create_task(self._guard(coro), name=name))

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception as exc:
            # A bug, not an outage: make it visible (healthz, logs) and stop waiting for it.
            self.stats.last_error = f"ingest task failed: {exc!r}"
            self._finished.set()
            raise

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        self._closing.set()
        self._hurry.set()
        self._wake.set()
        if e is None:
            try:
                async with asyncio.timeout(self._settings.close_timeout_s):
                    await self._finished.wait()
            except TimeoutError:
                log.warning("ingest closed with work pending; the broker redelivers it")
        for task in self._tasks:
            task.cancel()
        try:
            await self._tg.__aexit__(et, e, tb)
        finally:
            await self._writer.close()

    @property
    def running(self) -> bool:
        """True while every task of the ingest is alive."""
        return bool(self._tasks) and not any(t.done() for t in self._tasks)

    async def wait_subscribed(self, timeout_s: float = 10.0) -> None:
        """Return once the subscriptions are in place (tests and start-up ordering)."""
        async with asyncio.timeout(timeout_s):
            await self._subscribed.wait()

    def depths(self) -> Depths:
        link = self._link
        return Depths(
            mqtt=acks.queued(link.client) if link is not None and link.open else 0,
            batch=len(self._builder) + self._job_waiting,
            hook=self._hook_queue.qsize(),
            unacked=self._received - self._settled,
        )

    # ------------------------------------------------------------------ receive

    async def _receive(self) -> None:
        while not self._closing.is_set():
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.stats.broker_reconnects += int(self._link is not None)
                self.stats.last_error = f"broker: {exc}"
                delay = backoff_s(self._attempt, cap=self._mqtt.reconnect_max_s)
                self._attempt += 1
                log.warning("broker connection lost (%s); reconnecting in %.1f s", exc, delay)
                try:
                    async with asyncio.timeout(delay):
                        await self._closing.wait()
                except TimeoutError:
                    pass
        self._stop_reading()

    async def _session(self) -> None:
        mqtt = client(
            self._url,
            identifier=self._mqtt.client_id,
            clean_session=False,
            keepalive=self._mqtt.keepalive_s,
        )
        acks.enable_manual_acks(mqtt)
        async with mqtt:
            for flt in topics.telemetry_filters(self._mqtt.topic_root):
                granted = await mqtt.subscribe(flt, qos=self._mqtt.qos)
                if any(_code(g) >= 0x80 for g in granted):
                    raise aiomqtt.MqttError(f"broker refused the subscription {flt!r}")
            self._generation += 1
            link = self._link = Link(mqtt, self._generation)
            self.stats.broker_connected = True
            self._attempt = 0
            self._subscribed.set()
            log.info("ingest subscribed", extra={"root": self._mqtt.topic_root})
            try:
                if await self._pump_until_closing(mqtt, link):
                    self._stop_reading()
                    await self._drained.wait()  # acknowledge on this connection, then leave
            finally:
                link.open = False
                self.stats.broker_connected = False

    async def _pump_until_closing(self, mqtt: aiomqtt.Client, link: Link) -> bool:
        """Feed the batcher until closing (True) or the connection fails (raises)."""
        pump = asyncio.ensure_future(self._pump(mqtt, link))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((pump, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (pump, closing):
                t.cancel()
            await asyncio.gather(pump, closing, return_exceptions=True)
        if not pump.cancelled() and (exc := pump.exception()) is not None:
            raise exc
        return True

    async def _pump(self, mqtt: aiomqtt.Client, link: Link) -> None:
        messages = mqtt.messages
        while True:
            first = await anext(messages)
            for message in (first, *acks.take_queued(mqtt, 4096)):
                while not self._builder.add(link, message):
                    # The batch is full: hand it over and wait until the writer takes it.
                    self._taken.clear()
                    self._hurry.set()
                    self._wake.set()
                    await self._taken.wait()
                self._received += 1
                self.stats.messages += 1
            self._wake.set()

    def _stop_reading(self) -> None:
        self._reading_done = True
        self._wake.set()

    # ------------------------------------------------------------------ write

    def _new_builder(self) -> BatchBuilder:
        if self._registry.full:
            log.warning("device registry full; starting a new one (rate limits reset)")
            self._registry = Registry(self._settings)
        return BatchBuilder(
            root=self._mqtt.topic_root, settings=self._settings, registry=self._registry
        )

    async def _decode(self) -> None:
        while True:
            if len(self._builder):
                await self._slot.wait()
                await self._linger(self._builder)
                builder, self._builder = self._builder, self._new_builder()
                if not self._closing.is_set():
                    self._hurry.clear()
                self._taken.set()
                self._slot.clear()
                job = self._build(builder)
                self._job_waiting = job.messages
                await self._jobs.put(job)
            elif self._reading_done:
                break
            else:
                self._wake.clear()
                await self._wake.wait()
        await self._jobs.put(None)

    def _build(self, builder: BatchBuilder) -> Job:
        try:
            return builder.build(now_ms=self._clock_ms(), now_s=time.monotonic())
        except Exception as exc:
            log.exception("building a batch failed; its messages are dead-lettered")
            self.stats.internal_errors += 1
            return builder.build_failed(f"internal error while decoding: {exc!r}"[:500])

    async def _write(self) -> None:
        while (job := await self._jobs.get()) is not None:
            self._job_waiting = 0
            self._slot.set()
            results = await self._commit(job)
            self._acknowledge(job)
            self._account(job, results)
            if self._on_batch is not None:
                for result in results:
                    if len(result.stored):
                        await self._hook_queue.put(result.stored)
        self._drained.set()
        if self._on_batch is not None:
            await self._hook_queue.put(None)
        else:
            self._finished.set()

    async def _linger(self, builder: BatchBuilder) -> None:
        remaining = builder.since + self._settings.batch_max_ms / 1000 - time.monotonic()
        if remaining > 0 and not self._hurry.is_set():
            try:
                async with asyncio.timeout(remaining):
                    await self._hurry.wait()
            except TimeoutError:
                pass

    async def _commit(self, job: Job) -> list[WriteResult]:
        """Commit ``job``, waiting out outages; a refused message is dead-lettered instead."""
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                result = await self._writer.write(job.batch, sites=job.sites, dead_letters=job.dead)
            except (psycopg.Error, OSError) as exc:
                if is_data_fault(exc):
                    return await self._isolate(job, exc)
                self.stats.write_errors += 1
                self.stats.database_ok = False
                self.stats.last_error = f"database: {exc}"
                delay = backoff_s(attempt, cap=self._settings.write_retry_max_s)
                attempt += 1
                log.warning("write failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            self.metrics.commit_seconds.observe(time.perf_counter() - started)
            self.stats.database_ok = True
            by_reason = self.stats.dead_letters_by_reason
            for letter in job.dead:
                by_reason[letter.kind] = by_reason.get(letter.kind, 0) + 1
            self.stats.dead_letters += len(job.dead)
            return [result]

    async def _isolate(self, job: Job, exc: BaseException) -> list[WriteResult]:
        """Bisect ``job`` by message until the refused message stands alone; dead-letter it."""
        self.stats.write_errors += 1
        ids = job.message_ids()
        if len(ids) > 1:
            half = np.zeros(job.messages, dtype=bool)
            half[ids[: len(ids) // 2]] = True
            return [*await self._commit(job.part(half)), *await self._commit(job.part(~half))]
        if not ids or not len(job.batch):
            # Only dead letters, and the database refuses even those: nothing more to isolate.
            log.error("database refused dead letters (%s); dropping them", exc)
            self.stats.internal_errors += 1
            return []
        i = ids[0]
        self.stats.refused_messages += 1
        log.error("database refused message %s on %s: %s", i, job.topics[i], exc)
        letter = DeadLetter(
            job.topics[i], job.payloads[i], f"database refused it: {exc}"[:1000], kind="database"
        )
        refused = job.part(np.zeros(job.messages, dtype=bool))
        refused.dead, refused.dead_origin = [*job.dead, letter], [*job.dead_origin, i]
        return await self._commit(refused)

    def _acknowledge(self, job: Job) -> None:
        for link, mids in job.acks:
            sent = acks.ack(link.client, mids) if link.open else 0
            self.stats.acks += sent
            self.stats.acks_skipped += len(mids) - sent
        self._settled += job.messages

    def _account(self, job: Job, results: list[WriteResult]) -> None:
        s, m = self.stats, self.metrics
        offered = sum(r.offered for r in results)
        inserted = sum(r.inserted for r in results)
        s.batches += 1
        s.merged_batches += any(r.merged for r in results)
        s.samples_decoded += job.decoded
        s.samples_offered += offered
        s.samples_stored += inserted
        s.duplicates += offered - inserted + job.duplicates
        s.rate_limited += job.rate_limited
        now = time.monotonic()
        s.last_commit_monotonic = now
        s.last_commit_unix = time.time()
        if len(job.batch):
            s.newest_sample_ms = max(s.newest_sample_ms, int(job.batch.ts_ms[-1]))
        m.batch_samples.observe(offered)
        m.batch_messages.observe(job.messages)
        m.lag_seconds.observe(now - job.received_at)

    # ------------------------------------------------------------------ detect

    async def _detect(self) -> None:
        assert self._on_batch is not None
        while (batch := await self._hook_queue.get()) is not None:
            try:
                await self._on_batch(batch)
            except Exception:
                self.stats.hook_errors += 1
                log.exception("on_batch hook failed; the batch is stored, detection skipped it")
        self._finished.set()


def _code(granted: int | ReasonCode) -> int:
    """A SUBACK return code (granted QoS, or >= 0x80 for a refusal)."""
    return granted.value if isinstance(granted, ReasonCode) else granted
