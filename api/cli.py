"""The `permitpulse` command: migrate, serve, demo, simulate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn

from api.settings import Settings

log = logging.getLogger("permitpulse")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result: int = handler(settings, args)
        return result
    except KeyboardInterrupt:
        return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="permitpulse", description=__doc__)
    sub = p.add_subparsers(title="commands")
    m = sub.add_parser("migrate", help="apply database migrations (PP_DATABASE_URL)")
    m.set_defaults(handler=_migrate)
    s = sub.add_parser("serve", help="run API + ingest against configured broker and database")
    s.set_defaults(handler=_serve)
    d = sub.add_parser("demo", help="run everything on embedded defaults with a simulated fleet")
    d.set_defaults(handler=_demo)
    for register in _package_commands():
        register(sub)
    return p


def _package_commands() -> list[Callable[[Any], None]]:
    """Each package registers its own sub-commands; the handler gets (settings, args)."""
    from firmware_sim.cli import register as simulator
    from ingest.cli import register as ingest

    return [simulator, ingest]


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    from api.storage import migrate

    if not settings.database.url:
        print("PP_DATABASE_URL is not set", file=sys.stderr)
        return 2
    form = migrate(settings.database.url)
    print(f"migrated; telemetry storage form: {form}")
    return 0


def _serve(settings: Settings, _: argparse.Namespace) -> int:
    if not (settings.mqtt.url and settings.database.url):
        print(
            "serve needs PP_MQTT_URL and PP_DATABASE_URL (or use `permitpulse demo`)",
            file=sys.stderr,
        )
        return 2
    return _run_http(settings, embedded=False, simulate=False, banner="PermitPulse serving")


def _demo(settings: Settings, _: argparse.Namespace) -> int:
    return _run_http(settings, embedded=True, simulate=True, banner="PermitPulse demo running")


def _run_http(settings: Settings, *, embedded: bool, simulate: bool, banner: str) -> int:
    from api.app import create_app

    app = create_app(settings, embedded=embedded, simulate=simulate)
    config = uvicorn.Config(
        app, host=settings.api.host, port=settings.api.port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        sock = server.servers[0].sockets[0].getsockname()
        print(
            f"{banner} at http://{sock[0]}:{sock[1]}/  (API docs at /docs; Ctrl-C stops)",
            flush=True,
        )

    async def run() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(announce(), name="announce")
            tg.create_task(server.serve(), name="http")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0 if server.started else 1
