"""Demo users: one per role, new random passwords at every start (demo mode only)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from api.auth import repository
from api.auth.models import Role
from api.auth.passwords import Passwords


@dataclass(frozen=True, slots=True)
class DemoCredential:
    role: Role
    username: str
    password: str


def demo_username(role: Role) -> str:
    return "demo-" + role.value.replace("_", "-")


async def seed_demo_users(
    pool: AsyncConnectionPool, passwords: Passwords, *, site: str
) -> list[DemoCredential]:
    """Create or reset one user per role (the admin sees every site, the others ``site``)."""
    creds = [DemoCredential(r, demo_username(r), secrets.token_urlsafe(12)) for r in Role]
    hashes = [await passwords.ahash(c.password) for c in creds]
    async with pool.connection() as conn, conn.transaction():
        await repository.ensure_sites(conn, [site])
        for cred, password_hash in zip(creds, hashes, strict=True):
            everywhere = cred.role is Role.ADMIN
            if await repository.get(conn, cred.username) is None:
                await repository.insert(
                    conn,
                    username=cred.username,
                    display_name=f"Demo {cred.role.value.replace('_', ' ')}",
                    password_hash=password_hash,
                    roles=[cred.role],
                    all_sites=everywhere,
                    worker_id=None,
                )
            else:
                await repository.update(
                    conn, cred.username, roles=[cred.role], all_sites=everywhere, disabled=False
                )
                await repository.set_password(conn, cred.username, password_hash)
            await repository.set_sites(conn, cred.username, [] if everywhere else [site])
    return creds


def render(creds: list[DemoCredential]) -> str:
    """The table `permitpulse demo` prints."""
    lines = ["Demo users (demo mode only; new passwords at every start):"]
    lines += [f"  {c.role.value:<13} {c.username:<18} {c.password}" for c in creds]
    return "\n".join(lines)
