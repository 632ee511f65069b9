"""The composition root: resolves services (configured or embedded), migrates, and runs the
ingest and, in the demo, the simulated fleet — all with one structured lifetime."""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from api._tasks import TaskScope
from api.embedded import embedded_broker, embedded_postgres
from api.errors import ConfigError
from api.settings import Settings
from api.storage import migrate_async, open_pool
from firmware_sim.fleet import Fleet, FleetSpec
from firmware_sim.publisher import PublishStats, publish_fleet
from ingest.consumer import Ingest
from ingest.metrics import IngestMetrics
from ingest.writer import TelemetryWriter

log = logging.getLogger(__name__)


class Runtime:
    """Everything a running PermitPulse process owns. Use as an async context manager.

    Args:
        settings: the configuration.
        embedded: start an embedded broker / PostgreSQL where no URL is configured
            (`permitpulse demo`); otherwise a missing URL is a `ConfigError`.
        simulate: publish the configured simulated fleet (`permitpulse demo`).
    """

    def __init__(self, settings: Settings, *, embedded: bool = False, simulate: bool = False):
        self.settings = settings
        self.embedded = embedded
        self.simulate = simulate
        self.mqtt_url = ""
        self.database_url = ""
        self.storage_form = "unknown"
        self.started_at = time.time()
        self.fleet_stats = PublishStats()
        #: Every Prometheus metric of this process; served at /metrics.
        self.metrics_registry = CollectorRegistry()
        self._stack = AsyncExitStack()
        self._pool: AsyncConnectionPool | None = None
        self._ingest: Ingest | None = None

    @property
    def pool(self) -> AsyncConnectionPool:
        assert self._pool is not None, "runtime not started"
        return self._pool

    @property
    def ingest(self) -> Ingest:
        assert self._ingest is not None, "runtime not started"
        return self._ingest

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.__aexit__(et, e, tb)
        log.info("runtime stopped")

    async def _start(self) -> None:
        s = self.settings
        enter = self._stack.enter_async_context
        self.mqtt_url = s.mqtt.url or ""
        if not self.mqtt_url:
            if not self.embedded:
                raise ConfigError("PP_MQTT_URL is not set (`permitpulse demo` embeds a broker)")
            self.mqtt_url = await enter(embedded_broker())
        self.database_url = s.database.url or ""
        if not self.database_url:
            if not self.embedded:
                raise ConfigError("PP_DATABASE_URL is not set (`permitpulse demo` embeds one)")
            self.database_url = await enter(embedded_postgres(s.data_dir))
        self.storage_form = await migrate_async(self.database_url)
        self._pool = await enter(open_pool(s.database, self.database_url))
        self._ingest = await enter(
            Ingest(
                mqtt_url=self.mqtt_url,
                mqtt=s.mqtt,
                settings=s.ingest,
                writer=TelemetryWriter(self._pool, device_touch_s=s.ingest.device_touch_s),
                metrics=IngestMetrics(self.metrics_registry),
            )
        )
        await self._ingest.wait_subscribed(timeout_s=30)
        tasks = await enter(TaskScope())
        if self.simulate and s.simulator.devices:
            fleet = Fleet(FleetSpec(devices=s.simulator.devices, seed=s.simulator.seed))
            tasks.start(
                publish_fleet(
                    fleet,
                    mqtt_url=self.mqtt_url,
                    topic_root=s.mqtt.topic_root,
                    site=s.simulator.site,
                    rate_hz=s.simulator.rate_hz,
                    encoding=s.simulator.encoding,
                    stats=self.fleet_stats,
                ),
                name="demo-fleet",
            )
