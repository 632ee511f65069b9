"""`permitpulse ingest`: run only the telemetry ingest (an ingest worker without the API)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.settings import Settings

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``ingest`` command to the ``permitpulse`` parser."""
    p = sub.add_parser(
        "ingest", help="run only the telemetry ingest (PP_MQTT_URL, PP_DATABASE_URL)"
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port (default: none)",
    )
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    p.set_defaults(handler=ingest)


def ingest(settings: Settings, args: argparse.Namespace) -> int:
    if not (settings.mqtt.url and settings.database.url):
        print("ingest needs PP_MQTT_URL and PP_DATABASE_URL", file=sys.stderr)
        return 2
    asyncio.run(_run(settings, migrate=not args.no_migrate, metrics_port=args.metrics_port))
    return 0


async def _run(settings: Settings, *, migrate: bool, metrics_port: int | None) -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    from api.storage import migrate_async, open_pool
    from ingest.consumer import Ingest
    from ingest.metrics import IngestMetrics
    from ingest.writer import TelemetryWriter

    assert settings.mqtt.url
    assert settings.database.url
    if migrate:
        await migrate_async(settings.database.url)
    registry = CollectorRegistry()
    if metrics_port is not None:
        start_http_server(metrics_port, registry=registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with open_pool(settings.database, settings.database.url) as pool:
        writer = TelemetryWriter(pool, device_touch_s=settings.ingest.device_touch_s)
        async with Ingest(
            mqtt_url=settings.mqtt.url,
            mqtt=settings.mqtt,
            settings=settings.ingest,
            writer=writer,
            metrics=IngestMetrics(registry),
        ) as running:
            await running.wait_subscribed(timeout_s=60)
            print("ingest running", flush=True)
            await stop.wait()
            log.info("stopping: committing and acknowledging what was received")
