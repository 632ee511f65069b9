"""`permitpulse users ...`: create the first administrator and manage users from a shell."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson

from api.auth.models import Principal, Role
from api.auth.schemas import UserCreate, UserRead, UserUpdate

if TYPE_CHECKING:
    from api.auth.service import AuthService
    from api.settings import Settings

#: The command line acts with full rights: whoever runs it holds the database credentials.
_SHELL = Principal(username="shell", roles=frozenset({Role.ADMIN}), sites=None)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``users create | list | passwd | disable`` to the ``permitpulse`` parser."""
    users = sub.add_parser("users", help="manage API users (PP_DATABASE_URL)")
    cmds = users.add_subparsers(title="users commands", required=True)
    create = cmds.add_parser("create", help="create a user (prints a generated password)")
    create.add_argument("username")
    create.add_argument(
        "--role", action="append", required=True, choices=[r.value for r in Role], dest="roles"
    )
    create.add_argument("--site", action="append", default=[], dest="sites")
    create.add_argument("--all-sites", action="store_true")
    create.add_argument("--name", default=None, help="display name (default: the user name)")
    create.add_argument("--password-stdin", action="store_true", help="read the password")
    create.set_defaults(handler=_create)
    lst = cmds.add_parser("list", help="list users as JSON lines")
    lst.set_defaults(handler=_list)
    pw = cmds.add_parser("passwd", help="set a user's password (revokes their refresh tokens)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(handler=_passwd)
    dis = cmds.add_parser("disable", help="disable a user and revoke their refresh tokens")
    dis.add_argument("username")
    dis.set_defaults(handler=_disable)


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The password to set and whether it was generated (then it is printed once)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise SystemExit("passwords differ")
        return first, False
    return secrets.token_urlsafe(18), True


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[AuthService]:
    """An `AuthService` over a small pool of the configured (and migrated) database."""
    from api.auth.passwords import Passwords
    from api.auth.service import AuthService
    from api.auth.tokens import TokenService
    from api.errors import ConfigError
    from api.storage import migrate_async, open_pool

    url = settings.database.url
    if not url:
        raise ConfigError("PP_DATABASE_URL is not set")
    await migrate_async(url)
    # The shell never issues tokens; the service only needs some key.
    tokens = TokenService(
        key=secrets.token_urlsafe(48),
        issuer=settings.auth.issuer,
        access_ttl=dt.timedelta(0),
        refresh_ttl=dt.timedelta(0),
    )
    async with open_pool(settings.database, url) as pool:
        yield AuthService(pool=pool, tokens=tokens, passwords=Passwords(settings.auth))


def _create(settings: Settings, args: argparse.Namespace) -> int:
    password, generated = _password(args)
    new = UserCreate(
        username=args.username,
        display_name=args.name or args.username,
        password=password,
        roles=[Role(r) for r in args.roles],
        sites=args.sites,
        all_sites=args.all_sites,
    )

    async def run() -> UserRead:
        async with _service(settings) as svc:
            return UserRead.of(await svc.create_user(new, create_sites=True))

    out: dict[str, Any] = asyncio.run(run()).model_dump(
        mode="json", include={"username", "roles", "sites", "all_sites"}
    )
    if generated:
        out["password"] = password
    print(orjson.dumps(out).decode())
    return 0


def _list(settings: Settings, _: argparse.Namespace) -> int:
    async def run() -> list[UserRead]:
        async with _service(settings) as svc:
            return [UserRead.of(u) for u in await svc.list_users(_SHELL)]

    for user in asyncio.run(run()):
        print(user.model_dump_json())
    return 0


def _passwd(settings: Settings, args: argparse.Namespace) -> int:
    password, generated = _password(args)
    _update(settings, args.username, UserUpdate(password=password))
    if generated:
        print(orjson.dumps({"username": args.username, "password": password}).decode())
    else:
        print(f"password of {args.username} changed")
    return 0


def _disable(settings: Settings, args: argparse.Namespace) -> int:
    _update(settings, args.username, UserUpdate(disabled=True))
    print(f"{args.username} disabled")
    return 0


def _update(settings: Settings, username: str, change: UserUpdate) -> None:
    async def run() -> None:
        async with _service(settings) as svc:
            await svc.update_user(username, change)

    asyncio.run(run())
