"""Device commands over the real broker and database: delivery, retries, timeouts, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt
import psycopg
import pytest

from api.settings import Settings
from api.storage import open_pool
from ingest.commands import Ack, AckStatus, parse_command
from ingest.mqtt import client
from ingest.topics import device_topic
from permits.enforcement.commands import CommandRecord, CommandService
from permits.enforcement.config import EnforcementSettings

FAST = EnforcementSettings(
    command_retry_s=0.3, command_max_attempts=3, command_deadline_s=5, command_expiry_s=5,
    dispatch_tick_s=0.05,
)  # fmt: skip


def add_device(url: str, device: str, site: str = "s1") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO sites (site_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (site, site)
        )
        conn.execute("INSERT INTO devices (device_id, site_id) VALUES (%s, %s)", (device, site))


def events(url: str, cmd_id: uuid.UUID) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT state FROM device_command_events WHERE cmd_id = %s ORDER BY at", (cmd_id,)
        ).fetchall()
    return [r[0] for r in rows]


@asynccontextmanager
async def service(
    settings: Settings,
    enforcement: EnforcementSettings,
    changes: list[CommandRecord] | None = None,
    url: str | None = None,
) -> AsyncIterator[CommandService]:
    assert settings.database.url
    assert settings.mqtt.url

    async def hook(rec: CommandRecord) -> None:
        if changes is not None:
            changes.append(rec)

    async with open_pool(settings.database, settings.database.url) as pool:
        svc = CommandService(
            pool=pool,
            mqtt_url=url or settings.mqtt.url,
            mqtt=settings.mqtt,
            settings=enforcement,
            on_change=hook,
        )
        async with svc:
            yield svc


@asynccontextmanager
async def fake_device(
    settings: Settings, device: str, *, ack: bool = True, received: list[str] | None = None
) -> AsyncIterator[None]:
    """A wearable that acknowledges each command (delivered, then done)."""
    url = settings.mqtt.url
    assert url
    root = settings.mqtt.topic_root
    ready = asyncio.Event()

    async def run() -> None:
        async with client(url, identifier=f"dev-{uuid.uuid4().hex[:6]}") as mqtt:
            await mqtt.subscribe(device_topic(root, "s1", device, "cmd"), qos=1)
            ready.set()
            async for m in mqtt.messages:
                cmd = parse_command(m.payload if isinstance(m.payload, bytes) else b"")
                assert not isinstance(cmd, str), cmd
                if received is not None:
                    received.append(cmd.cmd_id)
                if not ack:
                    continue
                for status in (AckStatus.DELIVERED, AckStatus.DONE):
                    a = Ack(cmd_id=cmd.cmd_id, device_id=device, status=status, ts_ms=1)
                    await mqtt.publish(device_topic(root, "s1", device, "ack"), a.encode(), qos=1)

    task = asyncio.create_task(run())
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task


async def wait_state(
    svc: CommandService, cmd_id: uuid.UUID, state: str, timeout_s: float = 15
) -> CommandRecord:
    async with asyncio.timeout(timeout_s):
        while (rec := await svc.get(cmd_id)).state != state:
            await asyncio.sleep(0.05)
    return rec


async def test_command_acknowledged_by_device_goes_queued_sent_delivered_done(
    settings: Settings,
) -> None:
    """The full lifecycle is stored, step by step."""
    assert settings.database.url
    add_device(settings.database.url, "d1")
    async with service(settings, FAST) as svc, fake_device(settings, "d1"):
        await svc.wait_connected()
        cmd_id = await svc.issue(device_id="d1", action="rest", params={"duration_s": 900})
        rec = await wait_state(svc, cmd_id, "done")
    assert rec.attempts == 1
    assert rec.params == {"duration_s": 900}
    assert events(settings.database.url, cmd_id) == ["queued", "sent", "delivered", "done"]


async def test_issue_many_queues_one_command_per_device_and_each_is_done(
    settings: Settings,
) -> None:
    """One statement queues the command for every device; each goes its own lifecycle."""
    assert settings.database.url
    for device in ("m1", "m2", "m3"):
        add_device(settings.database.url, device)
    async with (
        service(settings, FAST) as svc,
        fake_device(settings, "m1"),
        fake_device(settings, "m2"),
        fake_device(settings, "m3"),
    ):
        await svc.wait_connected()
        ids = await svc.issue_many(
            device_ids=["m1", "m2", "m3"], action="evacuate", params={"reason": "drill"}
        )
        records = [await wait_state(svc, cmd_id, "done") for cmd_id in ids]
    assert [r.device_id for r in records] == ["m1", "m2", "m3"]
    assert all(r.params == {"reason": "drill"} and r.action == "evacuate" for r in records)
    assert len(set(ids)) == 3


async def test_command_never_acknowledged_is_retried_then_times_out_and_is_reported(
    settings: Settings,
) -> None:
    """QoS 1 resends with the same cmd_id; after the last attempt the control room is told."""
    assert settings.database.url
    add_device(settings.database.url, "d2")
    changes: list[CommandRecord] = []
    received: list[str] = []
    async with (
        service(settings, FAST, changes) as svc,
        fake_device(settings, "d2", ack=False, received=received),
    ):
        await svc.wait_connected()
        cmd_id = await svc.issue(device_id="d2", action="evacuate")
        rec = await wait_state(svc, cmd_id, "timed_out")
    assert rec.attempts == FAST.command_max_attempts
    assert received == [str(cmd_id)] * FAST.command_max_attempts
    assert "no acknowledgement after 3 attempt(s)" in (rec.detail or "")
    assert [c.state for c in changes if c.cmd_id == cmd_id] == ["timed_out"]


async def test_command_unsent_past_expiry_is_expired(settings: Settings) -> None:
    """With no broker to send through, a command expires rather than being sent stale."""
    assert settings.database.url
    add_device(settings.database.url, "d3")
    quick = FAST.model_copy(update={"command_deadline_s": 0.5, "command_expiry_s": 0.5})
    async with service(settings, quick, url="mqtt://127.0.0.1:9") as svc:
        cmd_id = await svc.issue(device_id="d3", action="message", params={"text": "hi"})
        rec = await wait_state(svc, cmd_id, "expired")
    assert rec.attempts == 0
    assert events(settings.database.url, cmd_id) == ["queued", "expired"]


async def test_commands_survive_a_service_restart(settings: Settings) -> None:
    """A command queued before a restart is delivered by the next instance."""
    assert settings.database.url
    add_device(settings.database.url, "d4")
    async with service(settings, FAST, url="mqtt://127.0.0.1:9") as svc:
        cmd_id = await svc.issue(device_id="d4", action="stop_work")
        assert (await svc.get(cmd_id)).state == "queued"
    async with service(settings, FAST) as svc, fake_device(settings, "d4"):
        rec = await wait_state(svc, cmd_id, "done")
    assert rec.action == "stop_work"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "invalid ack"),
        (b'{"cmd_id": "x", "device_id": "d5", "status": "done", "ts_ms": 1}', "no valid cmd_id"),
        (
            Ack(cmd_id=str(uuid.uuid4()), device_id="d5", status=AckStatus.DONE, ts_ms=1).encode(),
            "unknown command",
        ),
        (
            Ack(
                cmd_id=str(uuid.uuid4()), device_id="other", status=AckStatus.DONE, ts_ms=1
            ).encode(),
            "other than its topic",
        ),
    ],
)
async def test_bad_ack_is_dead_lettered_with_reason(
    settings: Settings, payload: bytes, reason: str
) -> None:
    """An ack that cannot be matched is kept with the reason; nothing else changes."""
    assert settings.database.url
    assert settings.mqtt.url
    add_device(settings.database.url, "d5")
    async with service(settings, FAST) as svc:
        await svc.wait_connected()
        async with client(settings.mqtt.url) as mqtt:
            await mqtt.publish(
                device_topic(settings.mqtt.topic_root, "s1", "d5", "ack"), payload, qos=1
            )
        async with asyncio.timeout(10):
            while True:
                with psycopg.connect(settings.database.url) as conn:
                    rows = conn.execute("SELECT reason FROM dead_letters").fetchall()
                if rows:
                    break
                await asyncio.sleep(0.05)
    assert reason in rows[0][0]
