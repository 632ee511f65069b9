"""Shared by the service benchmarks: private Mosquitto and PostgreSQL from the machine's
binaries, a fresh migrated database per run, the whole service served on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any


@contextlib.contextmanager
def private_services() -> Iterator[tuple[Any, Any] | None]:
    """A private PostgreSQL and Mosquitto (`benchmarks._stack`), or None when the machine
    lacks their binaries. Set ``PP_BENCH_BROKER_LOG`` to see the broker's log tail afterwards."""
    from benchmarks import _stack

    if not _stack.have_binaries():
        yield None
        return
    with _stack.private_services() as (broker, pg):
        try:
            yield pg, broker
        finally:
            if os.environ.get("PP_BENCH_BROKER_LOG"):
                print((broker.dir / "mosquitto.log").read_text()[-6000:], file=sys.stderr)


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str = "bench") -> Iterator[str]:
    """A new migrated database on ``admin_url``'s server; dropped afterwards."""
    from benchmarks._stack import new_database
    from tests import services

    url = new_database(admin_url, prefix)
    try:
        yield url
    finally:
        services.drop_database(admin_url, url.rsplit("/", 1)[-1].split("?")[0])


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
