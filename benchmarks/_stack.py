"""Private services for benchmarks and soak runs: a Mosquitto with the project's settings and
a PostgreSQL cluster from the machine's binaries (``tests.services``), plus fresh migrated
databases on it. Both are stopped and their directories removed on the way out, whatever
happens inside."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from api.storage import migrate
from tests import services


def mosquitto_binary() -> str | None:
    """The machine's Mosquitto, or None."""
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return found if Path(found).exists() else None


def have_binaries() -> bool:
    """True when the machine has both Mosquitto and PostgreSQL binaries."""
    return mosquitto_binary() is not None and services.find_pg_bindir() is not None


@contextlib.contextmanager
def private_services() -> Iterator[tuple[services.Mosquitto, services.PrivatePostgres]]:
    """A started private broker and PostgreSQL; both closed (and their files removed) after.

    Raises:
        RuntimeError: when the machine has no Mosquitto or PostgreSQL binaries.
    """
    binary, bindir = mosquitto_binary(), services.find_pg_bindir()
    if binary is None or bindir is None:
        raise RuntimeError("needs Mosquitto and PostgreSQL binaries on this machine")
    with contextlib.ExitStack() as stack:
        broker = services.Mosquitto(binary)
        stack.callback(broker.close)
        postgres = services.PrivatePostgres(bindir)
        stack.callback(_close_postgres, postgres)
        broker.start()
        postgres.start()
        yield broker, postgres


def _close_postgres(postgres: services.PrivatePostgres) -> None:
    # A cluster stopped by a fault (and not started again) cannot be stopped twice.
    with contextlib.suppress(Exception):
        postgres.stop()
    shutil.rmtree(postgres.dir, ignore_errors=True)


def new_database(admin_url: str, prefix: str = "bench") -> str:
    """A new, migrated database on ``admin_url``'s server; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    services.create_database(admin_url, name)
    url = services.database_url(admin_url, name)
    migrate(url)
    return url


def fresh_database(postgres: services.PrivatePostgres, prefix: str = "bench") -> str:
    """A new, migrated database on ``postgres``; returns its URL."""
    return new_database(postgres.url, prefix)
