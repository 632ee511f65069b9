"""`permitpulse simulate`: publish a simulated fleet to the configured broker."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from api.settings import Settings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``simulate`` command to the ``permitpulse`` parser."""
    sim = sub.add_parser("simulate", help="publish a simulated fleet to the broker (PP_MQTT_URL)")
    sim.add_argument("--devices", type=int, default=50)
    sim.add_argument("--rate", type=float, default=1.0, help="samples per second per device")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--site", default="demo-site")
    sim.add_argument("--encoding", choices=("json", "binary"), default="binary")
    sim.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    sim.set_defaults(handler=simulate)


def simulate(settings: Settings, args: argparse.Namespace) -> int:
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
