"""The FastAPI application: its lifespan enters the `Runtime`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, routes
from api.runtime import Runtime
from api.settings import Settings
from permits.router import router as permits_router


def create_app(settings: Settings, *, embedded: bool = False, simulate: bool = False) -> FastAPI:
    """The app; starting it (lifespan) starts the whole runtime, stopping it stops everything."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Runtime(settings, embedded=embedded, simulate=simulate) as rt:
            app.state.runtime = rt
            yield

    app = FastAPI(
        title="PermitPulse",
        version="0.1.0",
        summary="Live permit-to-work enforcement (GB 30871-2022) from wearable telemetry.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(permits_router)
    return app
