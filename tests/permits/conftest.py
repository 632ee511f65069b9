"""Fixtures of the permit tests: a seeded database, a pool, a settable clock, the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from permits.service import PermitService
from tests.permits import factories as f


@pytest.fixture
def seeded_url(database_url: str) -> str:
    """A fresh migrated database with the plant of `factories` in it."""
    f.seed_sql(database_url)
    return database_url


@pytest.fixture
async def pool(seeded_url: str) -> AsyncIterator[AsyncConnectionPool]:
    p = AsyncConnectionPool(seeded_url, min_size=1, max_size=4, open=False)
    await p.open(wait=True)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def clock() -> f.Clock:
    return f.Clock()


@pytest.fixture
async def svc(
    pool: AsyncConnectionPool, clock: f.Clock, tmp_path: Path
) -> AsyncIterator[PermitService]:
    async with PermitService(
        pool=pool, settings=f.settings(), data_dir=tmp_path, verifier=f.verifier(), clock=clock
    ) as s:
        yield s
