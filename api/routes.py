"""HTTP routes of the foundation: health and telemetry reads (thin: the work is elsewhere)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import telemetry
from api.auth import Principal, Role, require_roles
from api.runtime import Runtime
from api.schemas import ComponentHealth, ErrorRead, HealthRead, SampleRead, TelemetryPage
from api.storage import ping
from ingest.wire import DEVICE_ID_RE

router = APIRouter()
MAX_WINDOW = dt.timedelta(days=7)
ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorRead},
    422: {"model": ErrorRead},
}
DeviceId = Annotated[str, Path(pattern=DEVICE_ID_RE.pattern, description="Device id.")]
#: Who may ask for telemetry at all; `telemetry.authorize_device` then checks site and device.
TelemetryReader = Annotated[
    Principal, Depends(require_roles(*telemetry.READ_TELEMETRY, Role.WORKER))
]


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


@router.get("/healthz", response_model=HealthRead, tags=["health"])
async def healthz(request: Request) -> JSONResponse:
    """Broker, database, ingest and storage form; HTTP 503 when a part is down."""
    rt = runtime(request)
    db_ok = await ping(rt.pool)
    ingest = rt.ingest
    stats = ingest.stats
    broker_ok = stats.broker_connected
    healthy = db_ok and broker_ok and ingest.running
    since_commit = time.monotonic() - stats.last_commit_monotonic
    body = HealthRead(
        status="ok" if healthy else "degraded",
        broker=ComponentHealth(
            ok=broker_ok, detail="" if broker_ok else f"not connected ({stats.last_error})"
        ),
        database=ComponentHealth(ok=db_ok, detail="" if db_ok else "no answer"),
        storage_form=rt.storage_form,
        ingest={
            "running": ingest.running,
            "writes_ok": stats.database_ok,
            "messages": stats.messages,
            "samples_stored": stats.samples_stored,
            "duplicates": stats.duplicates,
            "rate_limited": stats.rate_limited,
            "dead_letters": stats.dead_letters,
            "batches": stats.batches,
            "write_errors": stats.write_errors,
            "broker_reconnects": stats.broker_reconnects,
            "unacked_messages": ingest.depths().unacked,
            "seconds_since_commit": round(since_commit, 3) if stats.batches else -1.0,
        },
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if healthy else 503)


@router.get(
    "/metrics",
    tags=["health"],
    response_class=Response,
    dependencies=[Depends(require_roles(Role.CONTROL_ROOM, Role.ADMIN))],
)
async def metrics(request: Request) -> Response:
    """Every metric of this process in the Prometheus text format (docs/operations.md); the
    scraper authenticates like any client (a control-room or admin token)."""
    return Response(
        generate_latest(runtime(request).metrics_registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get(
    "/api/v1/devices/{device_id}/latest",
    response_model=SampleRead,
    responses=ERRORS,
    tags=["telemetry"],
)
async def device_latest(request: Request, user: TelemetryReader, device_id: DeviceId) -> SampleRead:
    """The newest stored sample of a device (of the caller's sites; a worker: their own)."""
    pool = runtime(request).pool
    await telemetry.authorize_device(pool, user, device_id)
    return await telemetry.latest(pool, device_id)


@router.get("/api/v1/telemetry", response_model=TelemetryPage, responses=ERRORS, tags=["telemetry"])
async def telemetry_window(
    request: Request,
    user: TelemetryReader,
    device: Annotated[str, Query(pattern=DEVICE_ID_RE.pattern, description="Device id.")],
    start: Annotated[dt.datetime, Query(description="Window start, ISO 8601 with zone.")],
    end: Annotated[dt.datetime, Query(description="Window end (exclusive), ISO 8601 with zone.")],
    limit: Annotated[int, Query(ge=1, le=100_000, description="Most samples returned.")] = 10_000,
) -> TelemetryPage:
    """Stored samples of one device in ``[start, end)``, oldest first (of the caller's sites;
    a worker: their own device)."""
    rt = runtime(request)
    telemetry.check_window(start, end, MAX_WINDOW)
    await telemetry.authorize_device(rt.pool, user, device)
    return await telemetry.window(
        rt.pool,
        device_id=device,
        start=start,
        end=end,
        limit=min(limit, rt.settings.api.max_query_rows),
        max_window=MAX_WINDOW,
    )
