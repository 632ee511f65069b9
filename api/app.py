"""The FastAPI application: its lifespan enters the `Runtime`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import enforcement_routes, errors, openapi, page_routes, routes
from api.auth import AuthContext
from api.auth.demo import seed_demo_users
from api.auth.router import router as auth_router
from api.middleware import BodySizeLimit, SecurityHeaders
from api.runtime import Runtime
from api.settings import Settings
from permits.router import router as permits_router


def create_app(settings: Settings, *, embedded: bool = False, simulate: bool = False) -> FastAPI:
    """The app; starting it (lifespan) starts the whole runtime, stopping it stops everything.

    Raises `ConfigError` outside demo mode when ``PP_AUTH_SECRET`` is unset or weak.
    """
    auth = AuthContext.from_settings(settings.auth)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Runtime(settings, embedded=embedded, simulate=simulate) as rt:
            app.state.runtime = rt
            if settings.auth.demo:
                app.state.demo_credentials = await seed_demo_users(
                    rt.pool,
                    auth.passwords,
                    site=rt.demo_site or settings.simulator.site or "demo-site",
                )
            yield

    docs = settings.api.public_docs
    app = FastAPI(
        title="PermitPulse",
        version="0.1.0",
        summary="Live permit-to-work enforcement (GB 30871-2022) from wearable telemetry.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.auth = auth
    app.state.demo_credentials = []
    errors.install(app)
    openapi.install(app)
    app.add_middleware(SecurityHeaders)
    # 413 beyond PP_API_MAX_BODY_BYTES; an upload route raises its own limit with FastAPI's
    # `max_body_size=` on the route, which this middleware honours.
    app.add_middleware(BodySizeLimit, max_bytes=settings.api.max_body_bytes)
    app.include_router(auth_router)
    app.include_router(routes.router)
    app.include_router(permits_router)
    app.include_router(enforcement_routes.router)
    app.include_router(enforcement_routes.ws_router)
    page_routes.install(app)
    return app
