"""PostgreSQL access: URLs, migrations (alembic), the async connection pool and health."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import create_engine, pool

from api.settings import DatabaseSettings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sqlalchemy_url(url: str) -> str:
    """The same database as a SQLAlchemy URL with the psycopg 3 driver (for alembic)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> str:
    """Upgrade the schema to ``revision`` and return the telemetry storage form."""
    _run_alembic(url, command.upgrade, revision)
    return _storage_form(url)


def downgrade(url: str, revision: str) -> None:
    """Undo revisions down to ``revision`` (``"base"``: an empty schema)."""
    _run_alembic(url, command.downgrade, revision)


def _run_alembic(url: str, step: Callable[[Config, str], None], revision: str) -> None:
    # Migrations gain nothing from prepared statements, and some poolers (and PGlite) break them.
    engine = create_engine(
        sqlalchemy_url(url), poolclass=pool.NullPool, connect_args={"prepare_threshold": None}
    )
    cfg = alembic_config(url)
    with engine.connect() as conn:
        # A session-level lock serialises concurrent migrators (several workers starting at
        # once); committing right away leaves alembic in charge of its own transactions.
        conn.exec_driver_sql("SELECT pg_advisory_lock(hashtext('pp_migrate'))")
        conn.commit()
        try:
            cfg.attributes["connection"] = conn
            step(cfg, revision)
        finally:
            conn.rollback()
            conn.exec_driver_sql("SELECT pg_advisory_unlock(hashtext('pp_migrate'))")
            conn.commit()
    engine.dispose()
    log.info("database migrated", extra={"revision": revision})


def _storage_form(url: str) -> str:
    with psycopg.connect(url, prepare_threshold=None) as conn:
        row = conn.execute("SELECT value FROM pp_meta WHERE key = 'storage_form'").fetchone()
    return str(row[0]) if row else "unknown"


async def migrate_async(url: str) -> str:
    """`migrate` off the event loop."""
    return await asyncio.to_thread(migrate, url)


@asynccontextmanager
async def open_pool(settings: DatabaseSettings, url: str) -> AsyncIterator[AsyncConnectionPool]:
    """An open async pool; connections that fail a check are replaced."""
    pool_ = AsyncConnectionPool(
        url,
        min_size=settings.pool_min,
        max_size=max(settings.pool_max, settings.pool_min),
        timeout=settings.connect_timeout_s,
        check=AsyncConnectionPool.check_connection,
        open=False,
        name="permitpulse",
    )
    await pool_.open(wait=False)
    try:
        yield pool_
    finally:
        await pool_.close()


async def storage_form(pool_: AsyncConnectionPool) -> str:
    """'timescaledb' or 'native-partitions', as chosen at migration time."""
    async with pool_.connection() as conn:
        cur = await conn.execute("SELECT value FROM pp_meta WHERE key = 'storage_form'")
        row = await cur.fetchone()
    return str(row[0]) if row else "unknown"


async def ping(pool_: AsyncConnectionPool, timeout_s: float = 2.0) -> bool:
    """True when a connection answers within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s), pool_.connection(timeout=timeout_s) as conn:
            await conn.execute("SELECT 1")
        return True
    except (psycopg.Error, TimeoutError, OSError):
        return False


__all__ = [
    "alembic_config",
    "downgrade",
    "migrate",
    "migrate_async",
    "open_pool",
    "ping",
    "sqlalchemy_url",
    "storage_form",
]
