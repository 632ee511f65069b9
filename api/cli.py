"""The `permitpulse` command: migrate, serve, demo, simulate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

import orjson
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
    sim = sub.add_parser("simulate", help="publish a simulated fleet to the broker (PP_MQTT_URL)")
    sim.add_argument("--devices", type=int, default=50)
    sim.add_argument("--rate", type=float, default=1.0, help="samples per second per device")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--site", default="demo-site")
    sim.add_argument("--encoding", choices=("json", "binary"), default="binary")
    sim.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    sim.set_defaults(handler=_simulate)
    return p


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


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from firmware_sim.fleet import Fleet, FleetSpec
    from firmware_sim.publisher import publish_fleet

    if not settings.mqtt.url:
        print("simulate needs PP_MQTT_URL (mqtt://host:port)", file=sys.stderr)
        return 2
    fleet = Fleet(FleetSpec(devices=args.devices, seed=args.seed))
    stats = asyncio.run(
        publish_fleet(
            fleet,
            mqtt_url=settings.mqtt.url,
            topic_root=settings.mqtt.topic_root,
            site=args.site,
            rate_hz=args.rate,
            encoding=args.encoding,
            duration_s=args.duration,
        )
    )
    print(orjson.dumps(stats.rates()).decode())
    return 0
