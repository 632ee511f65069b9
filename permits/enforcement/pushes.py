"""Pushes to people: sent → seen → acked | escalated, with escalation along a role chain.

A notification (a *group*) goes at once to everyone holding the first roles; when nobody in
the group acknowledges it before its deadline it goes on to the next role of its chain
(watcher → supervisor → safety → control room by default), each step stored. Connected
clients receive pushes live; a client that reconnects gets every push still unacknowledged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ingest._tasks import TaskScope
from ingest.errors import PermitPulseError

log = logging.getLogger(__name__)


class PushNotFound(PermitPulseError):
    """Raised when a push does not exist or is not addressed to the acting user.

    Attributes:
        push_id: the push asked for.
    """

    def __init__(self, push_id: str) -> None:
        super().__init__(f"push {push_id} not found for this user")
        self.push_id = push_id


@dataclass(frozen=True, slots=True)
class Push:
    """One push as a recipient sees it."""

    push_id: uuid.UUID
    group_id: uuid.UUID
    user_id: str
    role: str
    level: int
    state: str
    kind: str
    message: str
    payload: dict[str, Any]
    site_id: str
    permit_id: uuid.UUID | None
    created_at: dt.datetime
    deadline_at: dt.datetime
    group_state: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "push",
            "push_id": str(self.push_id),
            "group_id": str(self.group_id),
            "role": self.role,
            "level": self.level,
            "state": self.state,
            "kind": self.kind,
            "message": self.message,
            "payload": self.payload,
            "site_id": self.site_id,
            "permit_id": str(self.permit_id) if self.permit_id else None,
            "created_at": self.created_at.isoformat(),
            "deadline_at": self.deadline_at.isoformat(),
            "group_state": self.group_state,
        }


class Recipients(Protocol):
    """Who holds a role for a site (and permit)."""

    async def users_for(
        self,
        conn: psycopg.AsyncConnection[Any],
        *,
        role: str,
        site_id: str,
        permit_id: uuid.UUID | None,
    ) -> list[str]: ...


class Outbox(Protocol):
    """Where live pushes go (the WebSocket hub)."""

    def deliver(self, user_id: str, message: dict[str, Any]) -> None: ...


class PushService:
    """Creates, delivers, acknowledges and escalates pushes. An async context manager."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        recipients: Recipients,
        outbox: Outbox,
        tick_s: float = 0.5,
    ) -> None:
        self._pool = pool
        self._recipients = recipients
        self._outbox = outbox
        self._tick_s = tick_s
        self._scope = TaskScope()

    async def __aenter__(self) -> Self:
        await self._scope.__aenter__()
        self._scope.start(self._escalator(), name="push-escalation")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._scope.__aexit__(et, e, tb)

    async def notify(
        self,
        *,
        site_id: str,
        roles: Sequence[str],
        chain: Sequence[str],
        message: str,
        deadline_s: float,
        kind: str = "notice",
        payload: dict[str, Any] | None = None,
        permit_id: uuid.UUID | None = None,
        decision_id: int | None = None,
    ) -> uuid.UUID:
        """Push ``message`` to everyone holding ``roles`` now; escalate along ``chain``."""
        order = list(dict.fromkeys([*chain, *roles]))
        level = max(order.index(r) for r in roles)
        group_id = uuid.uuid4()
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO push_groups (group_id, decision_id, site_id, permit_id, kind, message,"
                " payload, chain, level, deadline_s, deadline_at) VALUES (%s, %s, %s, %s, %s, %s,"
                " %s, %s, %s, %s, now() + make_interval(secs => %s))",
                (
                    group_id, decision_id, site_id, permit_id, kind, message,
                    orjson.dumps(payload or {}).decode(), order, level, deadline_s, deadline_s,
                ),
            )  # fmt: skip
            created = await self._send_to(conn, group_id, site_id, permit_id, roles, level)
            if not created:
                created = await self._escalate_group(conn, group_id)
        await self._deliver(created)
        return group_id

    async def ack(self, push_id: uuid.UUID, user_id: str) -> Push:
        """The recipient acknowledges: the push and its group are acked, escalation stops."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE pushes SET state = 'acked', acked_at = now(),"
                " seen_at = coalesce(seen_at, now()) WHERE push_id = %s AND user_id = %s"
                " AND state <> 'acked' RETURNING group_id",
                (push_id, user_id),
            )
            row = await cur.fetchone()
            if row is not None:
                await conn.execute(
                    "UPDATE push_groups SET state = 'acked', acked_at = now(), acked_by = %s"
                    " WHERE group_id = %s AND state <> 'acked'",
                    (user_id, row[0]),
                )
        push = await self._one(push_id, user_id)
        await self._deliver_group_update(push.group_id)
        return push

    async def seen(self, push_id: uuid.UUID, user_id: str) -> Push:
        """The recipient's device showed the push."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE pushes SET state = 'seen', seen_at = now()"
                " WHERE push_id = %s AND user_id = %s AND state = 'sent'",
                (push_id, user_id),
            )
        return await self._one(push_id, user_id)

    async def pending_for(self, user_id: str) -> list[Push]:
        """Pushes the user has not acknowledged whose group is still open (replay)."""
        return await self._query(
            "p.user_id = %s AND p.state IN ('sent', 'seen', 'escalated') AND g.state = 'open'",
            (user_id,),
        )

    async def group(self, group_id: uuid.UUID) -> list[Push]:
        """Every push of a group, in the order they were sent."""
        return await self._query("p.group_id = %s", (group_id,))

    # ------------------------------------------------------------------ internals

    async def _send_to(
        self,
        conn: psycopg.AsyncConnection[Any],
        group_id: uuid.UUID,
        site_id: str,
        permit_id: uuid.UUID | None,
        roles: Sequence[str],
        level: int,
    ) -> list[uuid.UUID]:
        created = []
        for role in roles:
            users = await self._recipients.users_for(
                conn, role=role, site_id=site_id, permit_id=permit_id
            )
            for user in users:
                push_id = uuid.uuid4()
                cur = await conn.execute(
                    "INSERT INTO pushes (push_id, group_id, user_id, role, level)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (group_id, user_id) DO NOTHING",
                    (push_id, group_id, user, role, level),
                )
                if cur.rowcount:
                    created.append(push_id)
        return created

    async def _escalate_group(
        self, conn: psycopg.AsyncConnection[Any], group_id: uuid.UUID
    ) -> list[uuid.UUID]:
        """Move an open group to the next role of its chain that has anyone to tell."""
        cur = await conn.execute(
            "SELECT site_id, permit_id, chain, level FROM push_groups WHERE group_id = %s"
            " AND state = 'open' FOR UPDATE",
            (group_id,),
        )
        row = await cur.fetchone()
        if row is None:
            return []
        site_id, permit_id, chain, level = row
        await conn.execute(
            "UPDATE pushes SET state = 'escalated', escalated_at = now()"
            " WHERE group_id = %s AND state IN ('sent', 'seen')",
            (group_id,),
        )
        for next_level in range(level + 1, len(chain)):
            created = await self._send_to(
                conn, group_id, site_id, permit_id, [chain[next_level]], next_level
            )
            if created:
                await conn.execute(
                    "UPDATE push_groups SET level = %s,"
                    " deadline_at = now() + make_interval(secs => deadline_s) WHERE group_id = %s",
                    (next_level, group_id),
                )
                return created
        await conn.execute(
            "UPDATE push_groups SET state = 'exhausted' WHERE group_id = %s", (group_id,)
        )
        log.warning("push group %s exhausted its escalation chain unacknowledged", group_id)
        return []

    async def _escalator(self) -> None:
        while True:
            try:
                await self._escalate_due()
            except (psycopg.Error, OSError) as exc:
                log.warning("escalation pass failed (%s)", exc)
            await asyncio.sleep(self._tick_s)

    async def _escalate_due(self) -> None:
        created: list[uuid.UUID] = []
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT group_id FROM push_groups WHERE state = 'open' AND deadline_at <= now()"
                " ORDER BY deadline_at LIMIT 200 FOR UPDATE SKIP LOCKED"
            )
            for (group_id,) in await cur.fetchall():
                created += await self._escalate_group(conn, group_id)
        await self._deliver(created)

    async def _deliver(self, push_ids: list[uuid.UUID]) -> None:
        if not push_ids:
            return
        for push in await self._query("p.push_id = ANY(%s)", (push_ids,)):
            self._outbox.deliver(push.user_id, push.to_json())

    async def _deliver_group_update(self, group_id: uuid.UUID) -> None:
        for push in await self.group(group_id):
            self._outbox.deliver(push.user_id, push.to_json())

    async def _one(self, push_id: uuid.UUID, user_id: str) -> Push:
        found = await self._query("p.push_id = %s AND p.user_id = %s", (push_id, user_id))
        if not found:
            raise PushNotFound(str(push_id))
        return found[0]

    async def _query(self, where: str, args: tuple[Any, ...]) -> list[Push]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"{_SELECT} WHERE {where} ORDER BY p.created_at, p.level, p.user_id", args
            )
            return [Push(**row) for row in await cur.fetchall()]


_SELECT = """
SELECT p.push_id, p.group_id, p.user_id, p.role, p.level, p.state, g.kind, g.message, g.payload,
       g.site_id, g.permit_id, p.created_at, g.deadline_at, g.state AS group_state
  FROM pushes p JOIN push_groups g USING (group_id)
"""
