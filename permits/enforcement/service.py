"""Live enforcement: detector alarms and permit events in, decisions carried out.

Fed by the ingest (every committed batch goes through the detector pipeline) and by the
permits' event channel (expiry, due-soon, state changes); owns the command and push
services, the alarm store and the evacuation tracker. One async context manager, one
TaskGroup: a ticker (offline/no-motion detection, evacuation tracking, return to work), a
permit-event listener, a context refresher and the detector snapshotter.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from detectors import DetectorPipeline, DetectorSettings
from detectors.models import AlarmEvent, Geofence, WorkerProfile
from detectors.repository import restore_pipeline, save_snapshot
from ingest._tasks import TaskScope
from ingest.config import MqttSettings
from ingest.mqtt import backoff_s
from ingest.wire import SampleBatch
from permits.enforcement.alarms import AlarmStore
from permits.enforcement.catchup import last_seen_ms, snapshot_saved_at, unseen
from permits.enforcement.commands import CommandRecord, CommandService
from permits.enforcement.config import EnforcementSettings
from permits.enforcement.context import DeviceFacts, LiveContext, SqlRecipients
from permits.enforcement.engine import (
    AlarmFacts,
    Decision,
    PermitFacts,
    evaluate_alarm,
    evaluate_permit,
)
from permits.enforcement.evacuation import Evacuations
from permits.enforcement.executor import Executor
from permits.enforcement.facts import alarm_facts
from permits.enforcement.lanes import Lanes
from permits.enforcement.pushes import Outbox, PushService
from permits.enforcement.recovery import ReturnToWork, hot
from permits.enforcement.rules import DEFAULT_RULES, RuleSet, Trigger, load
from permits.service import PermitService

log = logging.getLogger(__name__)

SNAPSHOT_SHARD = "live"
#: Permit events that change none of the facts the engine reads (the engine's own alarm
#: records): no re-read of permits, devices and fitness for them.
RECORD_ONLY_EVENTS = frozenset({"alarm"})


class LiveSink(Protocol):
    """The control room's live hub (telemetry and events)."""

    def publish_batch(self, batch: SampleBatch, sites: dict[str, str] | None = None) -> None: ...

    def publish_event(self, event: dict[str, Any]) -> int: ...

    def set_device_facts(
        self, device: str, *, site: str | None = None, permits: Any = ()
    ) -> None: ...

    def positions(self) -> Mapping[str, tuple[float, float]]: ...


@dataclass
class EnforcementStats:
    batches: int = 0
    alarms: int = 0
    decisions: int = 0
    caught_up_samples: int = 0
    last_tick_ms: int = 0


class Enforcement:
    """The live rule engine and everything that carries out its decisions."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        database_url: str,
        mqtt_url: str,
        mqtt: MqttSettings,
        settings: EnforcementSettings,
        detectors: DetectorSettings,
        permits: PermitService,
        live: LiveSink,
        outbox: Outbox,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._pool = pool
        self._db_url = database_url
        self._s = settings
        self._live = live
        self._permits = permits
        self._clock_ms = clock_ms
        self.rules: RuleSet = load(settings.rules_file or DEFAULT_RULES)
        self.ctx = LiveContext(pool, work_area_radius_m=settings.work_area_radius_m)
        self.pipeline = DetectorPipeline(detectors)
        self.alarms = AlarmStore(pool)
        self.evacuations = Evacuations(pool)
        self.commands = CommandService(
            pool=pool,
            mqtt_url=mqtt_url,
            mqtt=mqtt,
            settings=settings,
            on_change=self._command_changed,
        )
        self.pushes = PushService(pool=pool, recipients=SqlRecipients(), outbox=outbox)
        self.executor = Executor(
            pool=pool,
            ctx=self.ctx,
            commands=self.commands,
            pushes=self.pushes,
            permits=permits,
            evacuations=self.evacuations,
            live=live,
            positions=live.positions,
        )
        #: Decisions are carried out here, in order per permit, off the detectors' path.
        self.lanes = Lanes()
        self.stats = EnforcementStats()
        self._lock = asyncio.Lock()  # one detector pass at a time (batches and ticks)
        self._recovery = ReturnToWork()
        # Alarm events taken out of the pipeline but not yet stored and decided: a snapshot
        # waits for none, so a restart never resumes from a state whose alarms were lost.
        self._in_flight = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self._stale = asyncio.Event()
        self._scope = TaskScope()

    async def __aenter__(self) -> Self:
        async with self._pool.connection() as conn:
            restored = await restore_pipeline(
                conn=conn, shard=SNAPSHOT_SHARD, pipeline=self.pipeline
            )
        log.info("detector state %s", "restored" if restored else "fresh")
        await self.refresh()
        await self._scope.__aenter__()
        try:
            await self._scope.enter(self.commands)
            await self._scope.enter(self.pushes)
            await self._scope.enter(self.lanes)
            await self._catch_up()
            self._scope.start(self._ticker(), name="enforcement-tick")
            self._scope.start(self._permit_events(), name="enforcement-permit-events")
            self._scope.start(self._refresher(), name="enforcement-refresh")
            self._scope.start(self._snapshotter(), name="enforcement-snapshots")
        except BaseException:
            await self._scope.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._scope.__aexit__(et, e, tb)
        if self.lanes.abandoned:
            # Decisions were cut off: keep the older snapshot, so that the next start's
            # catch-up raises those alarms again and takes the decisions not yet stored.
            log.warning("detector snapshot not saved: %d lane(s) cut off", self.lanes.abandoned)
            return
        with contextlib.suppress(psycopg.Error, OSError):
            await self._save_snapshot()

    # ------------------------------------------------------------------ inputs

    async def on_batch(self, batch: SampleBatch) -> None:
        """The ingest's after-commit hook: live view, detectors, decisions."""
        self._live.publish_batch(batch)
        if any(d not in self.ctx.snap.devices for d in batch.devices):
            self._stale.set()  # a device seen for the first time: learn its site and wearer
        async with self._lock:
            events = self.pipeline.process(batch, self._clock_ms())
            self._take(events)
        self.stats.batches += 1
        if events:
            await self._settle(self._handle(events))

    def estimates(self, device_id: str) -> dict[str, Any] | None:
        """The detectors' current scores for a device (core temperature, strain, ...)."""
        if device_id not in self.pipeline._slot:
            return None
        return {
            k: (None if isinstance(v, float) and v != v else v)
            for k, v in self.pipeline.scores(device_id).items()
        }

    async def refresh(self, *, devices: bool = True) -> None:
        """Re-read permits and fitness and, with ``devices``, the devices and who wears them;
        tell the detectors and the live hub. Without ``devices`` (a permit changed) only the
        permits' devices are touched: the cost follows the permits, not the fleet."""
        before = self.ctx.snap
        snap = await self.ctx.refresh(devices=devices)
        if not devices and any(d not in snap.devices for d in snap.by_device):
            devices = True  # a permit names a device not read yet: read them all
            snap = await self.ctx.refresh(devices=True)
        async with self._lock:
            if devices:
                self._assign_wearers(snap.devices.values())
            self.pipeline.set_permits(
                Geofence(
                    permit_id=p.permit_id,
                    lat=p.lat or 0.0,
                    lon=p.lon or 0.0,
                    radius_m=p.radius_m or self._s.work_area_radius_m,
                    devices=p.devices,
                    watcher_device=p.watcher_device,
                    type=p.type,
                    level=p.level,
                )
                for p in snap.permits.values()
                if p.state == "active" and p.lat is not None and p.lon is not None
            )
        touched = snap.devices.keys() if devices else before.by_device.keys() | snap.by_device
        for device_id in touched:
            if (device := snap.devices.get(device_id)) is not None:
                self._live.set_device_facts(
                    device_id,
                    site=device.site_id,
                    permits=[p.permit_id for p in snap.by_device.get(device_id, [])],
                )

    def _assign_wearers(self, devices: Iterable[DeviceFacts]) -> None:
        for device in devices:
            profile = None
            if device.worker_id is not None:
                profile = WorkerProfile(
                    worker_id=device.worker_id,
                    age=device.age,
                    acclimatized=device.acclimatized,
                    resting_hr=device.resting_hr,
                )
            if self.pipeline.profiles.get(device.device_id) != profile:
                self.pipeline.assign(device.device_id, profile)

    def _take(self, events: list[AlarmEvent]) -> None:
        if events:
            self._in_flight += 1
            self._settled.clear()

    async def _settle(self, handling: Coroutine[Any, Any, None]) -> None:
        try:
            await handling
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._settled.set()

    async def _handle(self, events: list[AlarmEvent]) -> None:
        """Store and decide on ``events``, waiting out a database outage: the attempt is
        repeated with capped backoff, and a decision already taken is not taken twice."""
        attempt = 0
        while True:
            try:
                await self._on_alarms(events, replayed=attempt > 0)
                return
            except (psycopg.OperationalError, OSError) as exc:
                delay = backoff_s(attempt, cap=5.0)
                attempt += 1
                log.warning("alarms not stored yet (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _catch_up(self) -> None:
        """Feed the detectors the stored samples their restored state has not seen
        (`permits.enforcement.catchup`), deciding on the alarms they raise, before any live
        batch; a decision already taken before the restart is not taken twice."""
        async with self._pool.connection() as conn:
            saved = await snapshot_saved_at(conn, SNAPSHOT_SHARD)
            since = saved or dt.datetime.now(dt.UTC)
            floor = since - dt.timedelta(seconds=self._s.catchup_s)
            n = 0
            async for batch in unseen(conn, last_ms=last_seen_ms(self.pipeline), floor=floor):
                async with self._lock:
                    events = self.pipeline.process(batch, int(batch.ts_ms.max()))
                n += len(batch)
                if events:
                    await self._on_alarms(events, replayed=True)
        self.stats.caught_up_samples = n
        log.info("detectors caught up on %d stored samples since %s", n, floor.isoformat())

    async def _decided(self, decision: Decision) -> bool:
        """True when this decision (rule, alarm, time) was already taken."""
        alarm = decision.facts.get("alarm") or {}
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT 1 FROM decisions WHERE rule_id = %s AND ts = to_timestamp(%s / 1000.0)"
                " AND facts->'alarm'->>'device_id' IS NOT DISTINCT FROM %s"
                " AND facts->'alarm'->>'kind' IS NOT DISTINCT FROM %s LIMIT 1",
                (decision.rule_id, decision.ts_ms, alarm.get("device_id"), alarm.get("kind")),
            )
            return await cur.fetchone() is not None

    async def _on_alarms(self, events: list[AlarmEvent], *, replayed: bool = False) -> None:
        facts = alarm_facts(events)
        self.stats.alarms += len(facts)
        rows = await self.alarms.record(facts)
        for row in rows:
            self._live.publish_event(
                {
                    "type": "alarm",
                    **row.to_json(),
                    "site_id": self.ctx.site_of_device(row.device_id),
                }
            )
        for fact in facts:
            for decision in evaluate_alarm(self.rules, fact, self.ctx):
                if replayed and await self._decided(decision):
                    continue
                self.stats.decisions += 1
                key = decision.permit_id or f"device:{fact.device_id}"
                self.lanes.submit(key, functools.partial(self._execute, decision))
            if fact.state != "cleared" and fact.severity in ("warning", "critical"):
                for permit in self.ctx.permits_of(fact.device_id):
                    if permit.state == "active":
                        record = functools.partial(self._record_alarm, permit.permit_id, fact)
                        self.lanes.submit(permit.permit_id, record)

    async def _execute(self, decision: Decision, permit: PermitFacts | None = None) -> None:
        """Carry out ``decision`` in its lane, waiting out a database outage: storing it is
        retried with capped backoff, and not repeated once it is stored."""
        attempt = 0
        while True:
            try:
                if attempt == 0 or not await self._decided(decision):
                    await self.executor.execute(decision, permit=permit)
                return
            except (psycopg.OperationalError, OSError) as exc:
                delay = backoff_s(attempt, cap=5.0)
                attempt += 1
                log.warning(
                    "decision %s not stored yet (%s); retrying in %.1f s",
                    decision.rule_id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _record_alarm(self, permit_id: str, fact: AlarmFacts) -> None:
        """The alarm in the permit's trail and KPIs (after the permit's decisions)."""
        with contextlib.suppress(Exception):
            await self._permits.record_alarm(
                permit_id=uuid.UUID(permit_id),
                kind=fact.kind,
                severity=fact.severity,
                worker_id=fact.worker_id,
            )

    async def _command_changed(self, record: CommandRecord) -> None:
        if record.action == "evacuate" and record.state in ("delivered", "done"):
            await self.evacuations.acked(record.cmd_id)
        self._live.publish_event(
            {
                "type": "command",
                "cmd_id": str(record.cmd_id),
                "device_id": record.device_id,
                "action": record.action,
                "state": record.state,
                "detail": record.detail,
            }
        )
        if record.state in ("timed_out", "expired"):
            site = self.ctx.site_of_device(record.device_id)
            if site is not None:
                await self.pushes.notify(
                    site_id=site,
                    roles=["control_room"],
                    chain=["control_room"],
                    message=f"Device {record.device_id} did not acknowledge '{record.action}'",
                    deadline_s=300,
                    kind="command_timeout",
                    payload={"cmd_id": str(record.cmd_id), "device_id": record.device_id},
                    decision_id=record.decision_id,
                )

    # ------------------------------------------------------------------ tasks

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._s.tick_s)
            try:
                now = self._clock_ms()
                async with self._lock:
                    events = self.pipeline.tick(now)
                    self._take(events)
                self.stats.last_tick_ms = now
                if events:
                    await self._settle(self._handle(events))
                for evac in await self.evacuations.track(self._live.positions()):
                    self._live.publish_event({"type": "evacuation", **evac.to_json()})
                await self._return_to_work(now)
            except (psycopg.Error, OSError) as exc:
                log.warning("enforcement tick failed (%s)", exc)

    async def _return_to_work(self, now_ms: int) -> None:
        """Workers on rest are fit again after their heat and SpO2 alarms stayed clear for the
        decision's recovery time (SPEC §5 downgrade)."""
        if not self.ctx.snap.unfit:
            self._recovery.clear()
            return
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT worker_id, coalesce(recover_min, 15) FROM worker_fitness WHERE NOT fit"
            )
            unfit = {str(w): float(m) for w, m in await cur.fetchall()}
        for worker_id in self._recovery.due(
            unfit, lambda w: hot(self.pipeline, self.ctx.devices_of_worker(w)), now_ms
        ):
            await self._declare_fit(worker_id)

    async def _declare_fit(self, worker_id: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE worker_fitness SET fit = true, reason = 'recovered', since = now()"
                " WHERE worker_id = %s",
                (worker_id,),
            )
        self.ctx.snap.unfit.pop(worker_id, None)
        self._recovery.forget(worker_id)
        self._live.publish_event({"type": "fitness", "worker_id": worker_id, "fit": True})
        log.info("worker %s recovered and fit again", worker_id)

    async def _permit_events(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._db_url, autocommit=True
                ) as conn:
                    await conn.execute("LISTEN pp_permit_events")
                    async for note in conn.notifies():
                        await self._on_permit_event(orjson.loads(note.payload))
            except (psycopg.Error, OSError) as exc:
                log.warning("permit event listener lost (%s); reconnecting", exc)
                await asyncio.sleep(1.0)

    async def _on_permit_event(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        permit_id = str(event.get("permit_id"))
        before = self.ctx.snap.permits.get(permit_id)
        if kind not in RECORD_ONLY_EVENTS:
            await self.refresh(devices=False)  # devices come and go through the refresher
        permit = self.ctx.snap.permits.get(permit_id) or before
        self._live.publish_event(
            {
                "type": "permit",
                "permit_id": permit_id,
                "kind": kind,
                "state": event.get("to_state"),
                "site_id": self.ctx.site_of_permit(permit_id),
            }
        )
        trigger = {"expire": Trigger.PERMIT_EXPIRED, "due_soon": Trigger.PERMIT_DUE}.get(str(kind))
        if trigger is None or permit is None:
            return
        if trigger is Trigger.PERMIT_EXPIRED:
            permit = PermitFacts(**{**_facts_dict(permit), "state": "expired"})
        for decision in evaluate_permit(self.rules, trigger, permit, self._clock_ms()):
            self.stats.decisions += 1
            job = functools.partial(self._execute, decision, permit)
            self.lanes.submit(permit_id, job)

    async def _refresher(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._s.refresh_s):
                    await self._stale.wait()
                await asyncio.sleep(0.5)  # let a burst of new devices arrive first
            self._stale.clear()
            try:
                await self.refresh()
            except (psycopg.Error, OSError) as exc:
                log.warning("context refresh failed (%s)", exc)

    async def _snapshotter(self) -> None:
        while True:
            await asyncio.sleep(self._s.snapshot_s)
            try:
                await self._save_snapshot()
            except (psycopg.Error, OSError) as exc:
                log.warning("detector snapshot failed (%s)", exc)

    async def _save_snapshot(self) -> None:
        while True:
            await self._settled.wait()
            await self.lanes.wait_idle()  # decided is not enough: stored and carried out
            async with self._lock:
                if not self._settled.is_set() or self.lanes.busy:
                    continue  # a batch raised alarms meanwhile: wait until they are decided
                async with self._pool.connection() as conn:
                    await save_snapshot(conn=conn, shard=SNAPSHOT_SHARD, pipeline=self.pipeline)
                return


def _facts_dict(p: PermitFacts) -> dict[str, Any]:
    return {name: getattr(p, name) for name in PermitFacts.__slots__}
