"""Device commands: queued → sent → delivered (device ack) → done | failed | timed out | expired.

Every command lives in the database before it is published (QoS 1), so a restart of the
service loses none: the dispatcher picks up whatever is still queued or awaiting its ack.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiomqtt
import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ingest import topics
from ingest._tasks import TaskScope
from ingest.commands import Ack, AckStatus, Command, CommandAction, parse_ack
from ingest.config import MqttSettings
from ingest.mqtt import backoff_s, client
from permits.enforcement.config import EnforcementSettings

log = logging.getLogger(__name__)

OPEN_STATES = ("queued", "sent", "delivered")
FINAL_STATES = ("done", "failed", "timed_out", "expired")


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command as stored."""

    cmd_id: uuid.UUID
    device_id: str
    action: str
    params: dict[str, Any]
    state: str
    attempts: int
    decision_id: int | None
    detail: str | None


ChangeHook = Callable[[CommandRecord], Awaitable[None]]


class CommandService:
    """Sends device commands and tracks their acknowledgements. An async context manager."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        mqtt_url: str,
        mqtt: MqttSettings,
        settings: EnforcementSettings,
        on_change: ChangeHook | None = None,
    ) -> None:
        self._pool = pool
        self._url = mqtt_url
        self._mqtt = mqtt
        self._s = settings
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._scope = TaskScope()

    async def __aenter__(self) -> Self:
        await self._scope.__aenter__()
        self._scope.start(self._connection(), name="commands-mqtt")
        self._scope.start(self._dispatcher(), name="commands-dispatch")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._scope.__aexit__(et, e, tb)

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    # ------------------------------------------------------------------ public use cases

    async def issue(
        self,
        *,
        device_id: str,
        action: CommandAction | str,
        params: dict[str, Any] | None = None,
        decision_id: int | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> uuid.UUID:
        """Queue a command (inside ``conn``'s transaction when given) and send it at once."""
        cmd_id = uuid.uuid4()
        sql = (
            "INSERT INTO device_commands (cmd_id, device_id, action, params, decision_id,"
            " deadline_at, expires_at) VALUES (%s, %s, %s, %s, %s,"
            " now() + make_interval(secs => %s), now() + make_interval(secs => %s))"
        )
        args = (
            cmd_id,
            device_id,
            str(action),
            orjson.dumps(params or {}).decode(),
            decision_id,
            self._s.command_deadline_s,
            self._s.command_expiry_s,
        )
        if conn is not None:
            await conn.execute(sql, args)
        else:
            async with self._pool.connection() as c:
                await c.execute(sql, args)
        self._wake.set()
        return cmd_id

    async def issue_many(
        self,
        *,
        device_ids: list[str],
        action: CommandAction | str,
        params: dict[str, Any] | None = None,
        decision_id: int | None = None,
    ) -> list[uuid.UUID]:
        """Queue the same command to several devices in one statement, then send them in one
        dispatch pass (an evacuation reaches the last device as soon as the first)."""
        if not device_ids:
            return []
        cmd_ids = [uuid.uuid4() for _ in device_ids]
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO device_commands (cmd_id, device_id, action, params, decision_id,"
                " deadline_at, expires_at) SELECT c, d, %s, %s, %s,"
                " now() + make_interval(secs => %s), now() + make_interval(secs => %s)"
                " FROM unnest(%s::uuid[], %s::text[]) AS t(c, d)",
                (
                    str(action),
                    orjson.dumps(params or {}).decode(),
                    decision_id,
                    self._s.command_deadline_s,
                    self._s.command_expiry_s,
                    cmd_ids,
                    device_ids,
                ),
            )
        self._wake.set()
        return cmd_ids

    async def get(self, cmd_id: uuid.UUID) -> CommandRecord:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"{_SELECT} WHERE cmd_id = %s", (cmd_id,))
            row = await cur.fetchone()
        if row is None:
            raise KeyError(cmd_id)
        return CommandRecord(**row)

    # ------------------------------------------------------------------ MQTT connection

    async def _connection(self) -> None:
        attempt = 0
        while True:
            try:
                async with client(self._url, identifier=f"{self._mqtt.client_id}-cmd") as mqtt:
                    await mqtt.subscribe(f"{self._mqtt.topic_root}/+/+/ack", qos=1)
                    self._client = mqtt
                    self._connected.set()
                    self._wake.set()
                    attempt = 0
                    async for message in mqtt.messages:
                        await self._on_ack(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                delay = backoff_s(attempt)
                attempt += 1
                log.warning("command channel lost (%s); retrying in %.1f s", exc, delay)
            finally:
                self._client = None
                self._connected.clear()
            await asyncio.sleep(backoff_s(attempt))

    async def _on_ack(self, topic: str, payload: Any) -> None:
        parsed = topics.parse(self._mqtt.topic_root, topic)
        raw = payload if isinstance(payload, bytes) else b""
        ack = parse_ack(raw)
        reason = None
        if isinstance(ack, str):
            reason = f"invalid ack: {ack}"
        elif parsed is None or parsed.device != ack.device_id:
            reason = "ack from a device other than its topic's"
        if reason is not None or isinstance(ack, str):
            await self._dead_letter(topic, raw, reason or "invalid ack")
            return
        try:
            cmd_id = uuid.UUID(ack.cmd_id)
        except ValueError:
            await self._dead_letter(topic, raw, "ack names no valid cmd_id")
            return
        record = await self._apply_ack(cmd_id, ack)
        if record is None:
            await self._dead_letter(topic, raw, "ack for an unknown command or another device")
        elif self._on_change is not None:
            await self._on_change(record)

    async def _apply_ack(self, cmd_id: uuid.UUID, ack: Ack) -> CommandRecord | None:
        sql = _ACK_DELIVERED if ack.status is AckStatus.DELIVERED else _ACK_FINAL
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"{sql} WHERE cmd_id = %(id)s AND device_id = %(device)s RETURNING {_COLUMNS}",
                {
                    "status": ack.status.value,
                    "detail": ack.detail,
                    "id": cmd_id,
                    "device": ack.device_id,
                },
            )
            row = await cur.fetchone()
        return CommandRecord(**row) if row else None

    async def _dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        log.info("bad ack", extra={"topic": topic, "reason": reason})
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO dead_letters (topic, payload, reason) VALUES (%s, %s, %s)",
                (topic, payload[:65536], reason),
            )

    # ------------------------------------------------------------------ dispatcher

    async def _dispatcher(self) -> None:
        while True:
            # Cleared before the pass, not after: a command queued while a pass runs must
            # wake the next pass at once, not wait for the tick.
            self._wake.clear()
            try:
                await self._dispatch_due()
            except (psycopg.Error, OSError) as exc:
                log.warning("command dispatch failed (%s); retrying", exc)
            try:
                async with asyncio.timeout(self._s.dispatch_tick_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _dispatch_due(self) -> None:
        changed: list[CommandRecord] = []
        async with (
            self._pool.connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(_CLOSE_STALE, (self._s.command_max_attempts,))
            changed += [CommandRecord(**r) for r in await cur.fetchall()]
            if self._client is not None:
                await cur.execute(_DUE)
                due = await cur.fetchall()
                # Published together, each waiting for its own PUBACK: the last device of an
                # evacuation does not wait for the broker's round trips to the others.
                await asyncio.gather(*(self._send(row) for row in due))
                if due:
                    await cur.execute(
                        _MARK_SENT, (self._s.command_retry_s, [row["cmd_id"] for row in due])
                    )
        for record in changed:
            log.warning("command %s %s", record.cmd_id, record.state)
            if self._on_change is not None:
                await self._on_change(record)

    async def _send(self, row: dict[str, Any]) -> None:
        mqtt = self._client
        assert mqtt is not None
        command = Command(
            cmd_id=str(row["cmd_id"]),
            action=row["action"],
            params=row["params"],
            issued_ms=int(row["created_ms"]),
            expires_ms=int(row["expires_ms"]),
        )
        topic = topics.device_topic(self._mqtt.topic_root, row["site_id"], row["device_id"], "cmd")
        await mqtt.publish(topic, command.encode(), qos=1)


_COLUMNS = "cmd_id, device_id, action, params, state, attempts, decision_id, detail"
_SELECT = f"SELECT {_COLUMNS} FROM device_commands"
#: Unsent past expiry → expired; sent and unacknowledged past the deadline or out of
#: attempts → timed out.
_CLOSE_STALE = f"""
UPDATE device_commands SET
    state = CASE WHEN state = 'queued' THEN 'expired' ELSE 'timed_out' END,
    finished_at = now(),
    detail = CASE WHEN state = 'queued' THEN 'not sent before it expired'
                  ELSE format('no acknowledgement after %%s attempt(s)', attempts) END
 WHERE cmd_id IN (
    SELECT cmd_id FROM device_commands
     WHERE (state = 'queued' AND expires_at <= now())
        OR (state = 'sent' AND (deadline_at <= now()
                                OR (attempts >= %s AND next_try_at <= now())))
     FOR UPDATE SKIP LOCKED)
RETURNING {_COLUMNS}
"""
_DUE = """
SELECT c.cmd_id, c.device_id, c.action, c.params, d.site_id,
       (extract(epoch FROM c.created_at) * 1000)::bigint AS created_ms,
       (extract(epoch FROM c.expires_at) * 1000)::bigint AS expires_ms
  FROM device_commands c JOIN devices d USING (device_id)
 WHERE c.state IN ('queued', 'sent') AND c.next_try_at <= now()
 ORDER BY c.next_try_at
 LIMIT 500
 FOR UPDATE OF c SKIP LOCKED
"""
_ACK_DELIVERED = """
UPDATE device_commands
   SET state = CASE WHEN state IN ('queued', 'sent') THEN 'delivered' ELSE state END,
       delivered_at = coalesce(delivered_at, now())
"""
_ACK_FINAL = """
UPDATE device_commands
   SET state = CASE WHEN state IN ('queued', 'sent', 'delivered') THEN %(status)s ELSE state END,
       delivered_at = coalesce(delivered_at, now()),
       finished_at = coalesce(finished_at, now()),
       detail = coalesce(%(detail)s, detail)
"""
_MARK_SENT = """
UPDATE device_commands
   SET attempts = attempts + 1,
       sent_at = coalesce(sent_at, now()),
       state = CASE WHEN state = 'queued' THEN 'sent' ELSE state END,
       next_try_at = now() + make_interval(secs => %s)
 WHERE cmd_id = ANY(%s)
"""
