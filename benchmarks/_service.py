"""Shared by the service benchmarks: private Mosquitto and PostgreSQL from the machine's
binaries, a fresh migrated database per run, the whole service served on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

MOSQUITTO = "/usr/sbin/mosquitto"


@contextlib.contextmanager
def private_services() -> Iterator[tuple[Any, Any] | None]:
    """A private PostgreSQL and Mosquitto (project settings), or None when the machine lacks
    their binaries. Set ``PP_BENCH_BROKER_LOG`` to see the broker's log tail afterwards."""
    import sys

    from tests import services

    bindir = services.find_pg_bindir()
    if bindir is None or not Path(MOSQUITTO).exists():
        yield None
        return
    pg = services.PrivatePostgres(bindir)
    broker = services.Mosquitto(MOSQUITTO)
    pg.start()
    broker.start()
    try:
        yield pg, broker
    finally:
        if os.environ.get("PP_BENCH_BROKER_LOG"):
            print((broker.dir / "mosquitto.log").read_text()[-6000:], file=sys.stderr)
        broker.close()
        pg.close()


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str = "bench") -> Iterator[str]:
    """A new migrated database on ``admin_url``'s server; dropped afterwards."""
    import uuid

    from api.storage import migrate
    from tests import services

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    services.create_database(admin_url, name)
    url = services.database_url(admin_url, name)
    try:
        migrate(url)
        yield url
    finally:
        services.drop_database(admin_url, name)


async def serve(app: Any, settings: Any) -> tuple[Any, asyncio.Task[None], str]:
    """Serve ``app`` as `permitpulse serve` does (same WebSocket options) on a free port;
    returns the server (set ``should_exit``), its task (await it) and ``host:port``."""
    import uvicorn

    from api.embedded import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws_max_size=settings.api.max_body_bytes,
            ws_per_message_deflate=settings.api.ws_compression,
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    return server, task, f"127.0.0.1:{port}"


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank, no interpolation); NaN for no values."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
