"""Plays a scenario on a real MQTT broker, in real time (or faster).

Every link (a wearable's own connection, a gateway's, or the shared connection of the
background fleet) has its own MQTT session: a retained birth on each device's ``status`` and,
for a wearable's own connection, a retained last will; store and forward across scheduled
outages and real connection losses; commands received on ``cmd`` and acknowledged on ``ack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from firmware_sim import _packets as pk
from firmware_sim.commands import Ack
from firmware_sim.config import SimulatorSettings
from firmware_sim.errors import LinkLostError
from firmware_sim.framing import Framer
from firmware_sim.mqtt_link import MqttLink
from firmware_sim.scenario import BackgroundSpec, Scenario, load_scenario
from firmware_sim.simulation import Link, Simulation, StatusChange, Tick
from firmware_sim.store_forward import StoreAndForward
from ingest import topics
from ingest.mqtt import backoff_s
from ingest.wire import FLAG_REPLAY, RECORD_DTYPE

log = logging.getLogger(__name__)

FIRMWARE = "pp-sim/1"


@dataclass
class PlayStats:
    """What a player has done so far."""

    messages: int = 0
    samples: int = 0
    replayed_samples: int = 0
    duplicates: int = 0
    dropped_samples: int = 0
    commands: int = 0
    acks: int = 0
    status_messages: int = 0
    reconnects: int = 0
    ticks: int = 0
    started: float = field(default_factory=time.monotonic)

    def rates(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "messages": self.messages,
            "samples": self.samples,
            "replayed_samples": self.replayed_samples,
            "duplicates": self.duplicates,
            "dropped_samples": self.dropped_samples,
            "commands": self.commands,
            "acks": self.acks,
            "status_messages": self.status_messages,
            "reconnects": self.reconnects,
            "ticks": self.ticks,
            "elapsed_s": round(elapsed, 3),
            "messages_per_s": round(self.messages / elapsed, 1),
            "samples_per_s": round(self.samples / elapsed, 1),
        }


@dataclass(frozen=True, slots=True)
class _Slice:
    """A link's share of one tick."""

    tick: int
    rec: np.ndarray
    acks: tuple[Ack, ...]
    status: tuple[StatusChange, ...]
    down: bool


def client_id(link: Link, topic_root: str, site: str) -> str:
    """A stable MQTT client id per link, distinct per topic root and site."""
    digest = hashlib.sha1(f"{topic_root}/{site}".encode()).hexdigest()[:8]
    return f"sim-{link.id}-{digest}"


class LinkRunner:
    """One link's life: connect, announce, publish with store and forward, take commands."""

    def __init__(
        self,
        link: Link,
        sim: Simulation,
        *,
        mqtt_url: str,
        topic_root: str,
        site: str,
        encoding: str,
        stats: PlayStats,
        qos: int = 1,
        keepalive_s: int = 30,
    ) -> None:
        self.link = link
        self.sim = sim
        self.url = mqtt_url
        self.root = topic_root
        self.site = site
        self.stats = stats
        self.qos = qos
        self.keepalive_s = keepalive_s
        self.client_id = client_id(link, topic_root, site)
        self.framer = Framer(
            link,
            sim.devices,
            topic_root=topic_root,
            site=site,
            encoding=encoding,
            replay_frame_samples=sim.scenario.network.replay_frame_samples,
        )
        capacity = int(sum(int(sim.buffer_samples[i]) for i in link.devices))
        self.saf = StoreAndForward(capacity)
        self.inbox: asyncio.Queue[_Slice | None] = asyncio.Queue()
        self.outbox: list[tuple[str, bytes, bool]] = []  # statuses and acks, in order
        self.tick = 0
        self.down = False
        self.dead = not any(sim.alive[i] for i in link.devices)
        self.closing = False
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()

    def _status_topic(self, i: int) -> str:
        return topics.device_topic(self.root, self.site, self.sim.devices[i], "status")

    def _status(self, i: int, state: str, **extra: Any) -> tuple[str, bytes, bool]:
        body = {"device_id": self.sim.devices[i], "state": state, **extra}
        return self._status_topic(i), orjson.dumps(body), True

    def _will(self) -> pk.Will | None:
        if self.link.kind != "device":
            return None
        i = self.link.devices[0]
        body = {"device_id": self.sim.devices[i], "state": "offline", "reason": "connection_lost"}
        return pk.Will(self._status_topic(i), orjson.dumps(body))

    # ------------------------------------------------------------------ tasks

    async def run(self) -> None:
        """Until the player closes the inbox (then sends what it can and disconnects)."""
        intake = asyncio.create_task(self._intake(), name=f"sim-intake-{self.link.id}")
        try:
            await self._connection()
        finally:
            intake.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await intake

    async def _intake(self) -> None:
        while True:
            item = await self.inbox.get()
            if item is None:
                self.closing = True
                self._wake.set()
                return
            self.tick = item.tick
            self.saf.push(item.rec, item.tick)
            for ack in item.acks:
                topic = topics.device_topic(self.root, self.site, ack.device_id, "ack")
                self.outbox.append((topic, ack.encode(), False))
            for change in item.status:
                self._status_change(change)
            self.down = item.down
            self._wake.set()

    def _status_change(self, change: StatusChange) -> None:
        i = self.sim.device_index[change.device_id]
        if self.link.kind == "device":
            self.dead = change.state == "dead"  # the device's own connection goes with it
        elif change.state == "dead":
            self.outbox.append(self._status(i, "offline", reason="lost", via=self.link.id))
        else:
            self.outbox.append(self._birth(i))

    def _birth(self, i: int) -> tuple[str, bytes, bool]:
        via = None if self.link.kind == "device" else self.link.id
        return self._status(
            i,
            "online",
            ts_ms=self.sim.device_ms(i),
            fw=FIRMWARE,
            via=via,
            battery=round(float(self.sim.battery[i])),
        )

    async def _wait(self) -> None:
        await self._wake.wait()
        self._wake.clear()

    async def _connection(self) -> None:
        attempt = 0
        sessions = 0
        while not (self.closing and (self.down or self.dead)):
            if self.down or self.dead:
                await self._wait()
                continue
            try:
                async with MqttLink(
                    self.url,
                    self.client_id,
                    will=self._will(),
                    clean_session=self.link.kind == "shared",
                    keepalive_s=self.keepalive_s,
                ) as mqtt:
                    attempt = 0
                    sessions += 1
                    self.stats.reconnects += sessions > 1
                    await self._online(mqtt)
                    if await self._serve(mqtt):
                        return
            except LinkLostError as exc:
                log.info("link %s: %s", self.link.id, exc.reason)
                self.connected.clear()
                if self.closing:
                    return
                await asyncio.sleep(backoff_s(attempt, base=0.2, cap=5.0))
                attempt += 1

    async def _online(self, mqtt: MqttLink) -> None:
        alive = [i for i in self.link.devices if self.sim.alive[i]]
        self.outbox[:0] = [self._birth(i) for i in alive]
        cmd = [topics.device_topic(self.root, self.site, self.sim.devices[i], "cmd") for i in alive]
        await mqtt.subscribe(cmd, qos=1)
        self.connected.set()

    async def _serve(self, mqtt: MqttLink) -> bool:
        """Publish as ticks come; True once closed cleanly, False when told to go down."""
        commands = asyncio.create_task(self._commands(mqtt), name=f"sim-cmd-{self.link.id}")
        try:
            while True:
                if self.down or self.dead:
                    mqtt.abort()  # the network (or the battery) is gone: the broker sends the will
                    self.connected.clear()
                    return False
                await self._flush(mqtt)
                if self.closing:
                    await self._goodbye(mqtt)
                    return True
                await self._wait()
        finally:
            commands.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await commands

    async def _commands(self, mqtt: MqttLink) -> None:
        try:
            async for topic, payload in mqtt.messages():
                parsed = topics.parse(self.root, topic)
                if parsed is None or parsed.device is None or parsed.channel != "cmd":
                    continue
                self.stats.commands += 1
                ack = self.sim.command(parsed.device, payload)
                if ack is not None:
                    ack_topic = topics.device_topic(self.root, self.site, ack.device_id, "ack")
                    self.outbox.append((ack_topic, ack.encode(), False))
                    self._wake.set()
        except LinkLostError:
            self._wake.set()

    async def _flush(self, mqtt: MqttLink) -> None:
        while self.outbox:
            topic, payload, retain = self.outbox[0]
            await mqtt.publish(topic, payload, qos=1, retain=retain)
            self.outbox.pop(0)
            if retain:
                self.stats.status_messages += 1
            else:
                self.stats.acks += 1
        rec = self.saf.take(self.tick)
        frames = self.framer.frames(rec)
        if not frames:
            return
        try:
            acked = await mqtt.publish_many([(f.topic, f.payload) for f in frames], qos=self.qos)
        except LinkLostError:
            acked = 0  # lost before anything went out
        for f in frames[:acked]:
            self.stats.messages += 1
            self.stats.samples += len(f.rec)
            self.stats.replayed_samples += int(np.count_nonzero(f.rec["flags"] & FLAG_REPLAY))
        if acked < len(frames):
            self.saf.requeue(np.concatenate([f.rec for f in frames[acked:]]), self.tick)
            raise LinkLostError(self.client_id, mqtt.lost or "publish not acknowledged")
        self.stats.dropped_samples = self.saf.dropped
        await self._duplicates(mqtt, frames)

    async def _duplicates(self, mqtt: MqttLink, frames: list[Any]) -> None:
        p = self.sim.duplicate_p
        again = [f for f in frames if p[int(f.rec["dev"][0])] > 0]
        rng = self.sim.net_rng
        again = [f for f in again if rng.random() < p[int(f.rec["dev"][0])]]
        if again:
            await mqtt.publish_many([(f.topic, f.payload) for f in again], qos=self.qos)
            self.stats.duplicates += len(again)

    async def _goodbye(self, mqtt: MqttLink) -> None:
        for i in self.link.devices:
            if self.sim.alive[i]:
                topic, payload, _ = self._status(i, "offline", reason="shutdown")
                await mqtt.publish(topic, payload, qos=1, retain=True)
                self.stats.status_messages += 1


class Player:
    """Drives a simulation in real time (× ``speed``) and feeds every link runner."""

    def __init__(
        self,
        sim: Simulation,
        *,
        mqtt_url: str,
        topic_root: str,
        site: str | None = None,
        encoding: str | None = None,
        speed: float = 1.0,
        qos: int = 1,
        stats: PlayStats | None = None,
    ) -> None:
        self.sim = sim
        self.speed = speed
        self.stats = stats if stats is not None else PlayStats()
        site = site or sim.scenario.site.id
        self.site = site
        self.runners = [
            LinkRunner(
                link,
                sim,
                mqtt_url=mqtt_url,
                topic_root=topic_root,
                site=site,
                encoding=encoding or sim.scenario.encoding,
                stats=self.stats,
                qos=qos,
            )
            for link in sim.links
        ]
        self._link_of = np.zeros(len(sim.devices), dtype=np.intp)
        for k, link in enumerate(sim.links):
            self._link_of[list(link.devices)] = k

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Return once every link that should be up has connected (tests)."""
        async with asyncio.timeout(timeout_s):
            for r in self.runners:
                if not (r.down or r.dead):
                    await r.connected.wait()

    async def run(self, ticks: int | None) -> PlayStats:
        """Play ``ticks`` steps (None: until cancelled), then close every link cleanly."""
        self.stats.started = time.monotonic()
        async with asyncio.TaskGroup() as tg:
            for r in self.runners:
                tg.create_task(r.run(), name=f"sim-link-{r.link.id}")
            try:
                await self._clock(ticks)
            finally:
                for r in self.runners:
                    r.inbox.put_nowait(None)
        return self.stats

    async def _clock(self, ticks: int | None) -> None:
        loop = asyncio.get_running_loop()
        period = self.sim.dt / self.speed
        t0 = loop.time()
        k = 0
        while ticks is None or k < ticks:
            self._dispatch(self.sim.step())
            self.stats.ticks += 1
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * period - loop.time()))

    def _dispatch(self, tick: Tick) -> None:
        rec = tick.samples.to_records()
        owner = self._link_of[rec["dev"]]
        order = np.argsort(owner, kind="stable")
        rec, owner = rec[order], owner[order]
        bounds = np.searchsorted(owner, np.arange(len(self.runners) + 1))
        acks: dict[int, list[Ack]] = {}
        for ack in tick.acks:
            acks.setdefault(int(self._link_of[self.sim.device_index[ack.device_id]]), []).append(
                ack
            )
        status: dict[int, list[StatusChange]] = {}
        for change in tick.status:
            k = int(self._link_of[self.sim.device_index[change.device_id]])
            status.setdefault(k, []).append(change)
        for k, runner in enumerate(self.runners):
            part = rec[bounds[k] : bounds[k + 1]] if len(rec) else np.empty(0, RECORD_DTYPE)
            runner.inbox.put_nowait(
                _Slice(
                    tick=tick.index,
                    rec=part,
                    acks=tuple(acks.get(k, ())),
                    status=tuple(status.get(k, ())),
                    down=runner.link.id in tick.links_down,
                )
            )


async def play(
    scenario: Scenario,
    *,
    mqtt_url: str,
    topic_root: str,
    site: str | None = None,
    encoding: str | None = None,
    speed: float = 1.0,
    duration_s: float | None = None,
    forever: bool = False,
    seed: int | None = None,
    extra_devices: int | None = None,
    stats: PlayStats | None = None,
    truth_path: Path | None = None,
) -> PlayStats:
    """Play ``scenario`` on the broker at ``mqtt_url`` starting now.

    Args:
        duration_s: how long (simulated seconds); default the scenario's duration.
        forever: keep playing after the scenario's end (the demo), until cancelled.
        truth_path: where to write the ground truth when play ends.
    """
    sim = Simulation(
        scenario,
        start_ms=time.time_ns() // 1_000_000,
        seed=seed,
        extra_devices=extra_devices,
    )
    player = Player(
        sim,
        mqtt_url=mqtt_url,
        topic_root=topic_root,
        site=site,
        encoding=encoding,
        speed=speed,
        stats=stats,
    )
    duration = duration_s if duration_s is not None else scenario.duration
    ticks = None if forever or duration is None else math.ceil(duration / sim.dt - 1e-9)
    try:
        return await player.run(ticks)
    finally:
        if truth_path is not None:
            await asyncio.to_thread(truth_path.write_bytes, orjson.dumps(sim.truth()))


def demo_scenario(settings: SimulatorSettings) -> Scenario | None:
    """What `permitpulse demo` plays: the configured scenario with ``settings.devices``
    background wearables added to its own; only background wearables when no scenario is
    configured; None when there is nothing to play.

    Raises:
        ScenarioError: when the configured scenario file is invalid.
    """
    if settings.scenario:
        scenario = load_scenario(settings.scenario)
        extra = scenario.background.devices + settings.devices
        background = scenario.background.model_copy(update={"devices": extra})
        return scenario.model_copy(update={"background": background})
    if settings.devices:
        return Scenario(name="background", background=BackgroundSpec(devices=settings.devices))
    return None
