"""`permitpulse` sub-commands of the permit domain: users (until issue 9), trail check."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from api.settings import Settings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``permit-user`` and ``audit-verify`` to the ``permitpulse`` parser."""
    user = sub.add_parser("permit-user", help="add or update a permit user and their roles")
    user.add_argument("user_id")
    user.add_argument("--name", required=True)
    user.add_argument("--roles", required=True, help="comma-separated, e.g. applicant,watcher")
    user.add_argument("--site", default=None)
    user.add_argument("--worker", default=None, help="the worker record this user is")
    user.set_defaults(handler=permit_user)
    verify = sub.add_parser("audit-verify", help="check the permit trail's hash chain")
    verify.set_defaults(handler=audit_verify)


def _url(settings: Settings) -> str | None:
    if not settings.database.url:
        print("needs PP_DATABASE_URL", file=sys.stderr)
    return settings.database.url


def permit_user(settings: Settings, args: argparse.Namespace) -> int:
    import psycopg

    from permits import repository

    url = _url(settings)
    if url is None:
        return 2

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await repository.upsert_user(
                conn,
                user_id=args.user_id,
                name=args.name,
                roles=[r.strip() for r in args.roles.split(",") if r.strip()],
                site_id=args.site,
                worker_id=args.worker,
            )

    asyncio.run(run())
    return 0


def audit_verify(settings: Settings, _: argparse.Namespace) -> int:
    import psycopg

    from permits import audit

    url = _url(settings)
    if url is None:
        return 2

    async def run() -> audit.AuditReport:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await audit.verify(conn)

    report = asyncio.run(run())
    print(orjson.dumps(dataclasses.asdict(report)).decode())
    return 0 if report.ok else 1
