"""Users in SQL: the ``users`` and ``user_sites`` tables (migration 0005)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection, errors, sql
from psycopg.rows import dict_row

from api.auth.models import Role, UserRecord
from api.errors import NotFoundError, UserExistsError

_SELECT = """
    SELECT u.username, u.display_name, u.password_hash, u.roles, u.all_sites, u.worker_id,
           u.disabled, u.token_version, u.created_at, u.last_login_at,
           coalesce(array_agg(s.site_id ORDER BY s.site_id)
                    FILTER (WHERE s.site_id IS NOT NULL), '{}') AS sites
      FROM users u LEFT JOIN user_sites s USING (username)
"""
_GROUP = " GROUP BY u.username"


def _record(row: dict[str, Any]) -> UserRecord:
    return UserRecord(
        username=row["username"],
        display_name=row["display_name"],
        password_hash=row["password_hash"],
        roles=frozenset(Role(r) for r in row["roles"]),
        sites=frozenset(row["sites"]),
        all_sites=row["all_sites"],
        worker_id=row["worker_id"],
        disabled=row["disabled"],
        token_version=row["token_version"],
        created_at=row["created_at"],
        last_login_at=row["last_login_at"],
    )


async def get(conn: AsyncConnection, username: str) -> UserRecord | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT + " WHERE u.username = %s" + _GROUP, (username,))
        row = await cur.fetchone()
    return _record(row) if row else None


async def list_all(conn: AsyncConnection) -> list[UserRecord]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_SELECT + _GROUP + " ORDER BY u.username")
        return [_record(r) for r in await cur.fetchall()]


async def insert(
    conn: AsyncConnection,
    *,
    username: str,
    display_name: str,
    password_hash: str,
    roles: Iterable[Role],
    all_sites: bool,
    worker_id: str | None,
) -> None:
    """Insert a user; `UserExistsError` when the name is taken."""
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO users (username, display_name, password_hash, roles, all_sites,"
                " worker_id) VALUES (%s, %s, %s, %s, %s, %s)",
                (username, display_name, password_hash, sorted(roles), all_sites, worker_id),
            )
    except errors.UniqueViolation as exc:
        raise UserExistsError(username) from exc
    except errors.ForeignKeyViolation as exc:
        raise NotFoundError("worker", worker_id or "") from exc


async def set_sites(conn: AsyncConnection, username: str, sites: Iterable[str]) -> None:
    """Replace the user's sites; `NotFoundError` for a site that does not exist."""
    wanted = sorted(set(sites))
    await conn.execute("DELETE FROM user_sites WHERE username = %s", (username,))
    if not wanted:
        return
    async with conn.cursor() as cur:
        await cur.execute("SELECT site_id FROM sites WHERE site_id = ANY(%s)", (wanted,))
        known = {r[0] for r in await cur.fetchall()}
    if missing := [s for s in wanted if s not in known]:
        raise NotFoundError("site", missing[0])
    await conn.execute(
        "INSERT INTO user_sites (username, site_id) SELECT %s, unnest(%s::text[])",
        (username, wanted),
    )


async def ensure_sites(conn: AsyncConnection, sites: Iterable[str]) -> None:
    """Create the sites that do not exist yet (named after their id)."""
    await conn.execute(
        "INSERT INTO sites (site_id, name) SELECT s, s FROM unnest(%s::text[]) s "
        "ON CONFLICT DO NOTHING",
        (sorted(set(sites)),),
    )


async def update(conn: AsyncConnection, username: str, **fields: Any) -> None:
    """Set columns of a user (names from a fixed list; values as parameters)."""
    allowed = {"display_name", "roles", "all_sites", "worker_id", "disabled"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    for column, value in fields.items():
        query = sql.SQL("UPDATE users SET {} = %s, updated_at = now() WHERE username = %s")
        await conn.execute(
            query.format(sql.Identifier(column)),
            (sorted(value) if column == "roles" else value, username),
        )


async def set_password(conn: AsyncConnection, username: str, password_hash: str) -> None:
    """Store a new hash and revoke every refresh token of the user."""
    await conn.execute(
        "UPDATE users SET password_hash = %s, password_changed_at = now(), updated_at = now(),"
        " token_version = token_version + 1 WHERE username = %s",
        (password_hash, username),
    )


async def rehash(conn: AsyncConnection, username: str, password_hash: str) -> None:
    """Store a stronger hash of the same password (tokens stay valid)."""
    await conn.execute(
        "UPDATE users SET password_hash = %s WHERE username = %s", (password_hash, username)
    )


async def revoke_tokens(conn: AsyncConnection, username: str) -> None:
    """Invalidate every refresh token issued to the user so far."""
    await conn.execute(
        "UPDATE users SET token_version = token_version + 1, updated_at = now() "
        "WHERE username = %s",
        (username,),
    )


async def record_login(conn: AsyncConnection, username: str) -> None:
    await conn.execute("UPDATE users SET last_login_at = now() WHERE username = %s", (username,))
