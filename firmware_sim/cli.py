"""`permitpulse simulate`: play a scenario on the broker, export it, or generate load."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from api.settings import Settings

EPILOG = """\
modes:
  permitpulse simulate --scenario demo.yaml                      play on the broker (PP_MQTT_URL)
  permitpulse simulate --scenario X --export t.csv --truth t.json  export, no broker
  permitpulse simulate --devices N --rate HZ --processes P ...   load mode (one JSON line)
"""


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``simulate`` command to the ``permitpulse`` parser."""
    sim = sub.add_parser(
        "simulate",
        help="play a scenario on the broker, export it to CSV, or generate load",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--scenario", help="scenario file or bundled name (e.g. demo.yaml)")
    sim.add_argument("--export", type=Path, help="write telemetry CSV (no broker)")
    sim.add_argument("--truth", type=Path, help="write the ground truth JSON")
    sim.add_argument("--duration", type=float, default=None, help="seconds")
    sim.add_argument("--speed", type=float, default=1.0, help="scenario play: × real time")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument("--site", default=None, help="site id (default: the scenario's)")
    sim.add_argument("--encoding", choices=("json", "binary"), default=None)
    sim.add_argument("--extra-devices", type=int, default=None, help="background wearables")
    load = sim.add_argument_group("load mode (without --scenario)")
    load.add_argument("--devices", type=int, default=None)
    load.add_argument("--rate", type=float, default=1.0, help="Hz per device; 0 = flat out")
    load.add_argument("--processes", type=int, default=1)
    load.add_argument("--gateway-size", type=int, default=1, help="devices per gateway frame")
    load.add_argument("--qos", type=int, choices=(0, 1), default=1)
    load.add_argument("--client", choices=("raw", "paho"), default="raw")
    load.add_argument("--topic-root", default=None, help="default: PP_MQTT_TOPIC_ROOT")
    load.add_argument(
        "--prefix",
        default=None,
        help="device id prefix (default: 'ld' + 4 random hex digits, so that repeated runs "
        "never collide on device and sequence number)",
    )
    sim.set_defaults(handler=simulate)


def simulate(settings: Settings, args: argparse.Namespace) -> int:
    from firmware_sim.errors import ScenarioError

    try:
        if args.scenario and args.export:
            return _export(args)
        if args.scenario:
            return _play(settings, args)
        if args.devices:
            return _load(settings, args)
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print("give --scenario (play or --export) or --devices (load mode)", file=sys.stderr)
    return 2


def _export(args: argparse.Namespace) -> int:
    from firmware_sim.export import export
    from firmware_sim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    try:
        summary = export(
            scenario,
            telemetry=args.export,
            truth=args.truth,
            duration_s=args.duration,
            seed=args.seed,
            extra_devices=args.extra_devices,
        )
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(orjson.dumps(summary.to_json()).decode())
    return 0


def _play(settings: Settings, args: argparse.Namespace) -> int:
    from firmware_sim.player import play
    from firmware_sim.scenario import load_scenario

    if not settings.mqtt.url:
        print("playing a scenario needs PP_MQTT_URL (mqtt://host:port)", file=sys.stderr)
        return 2
    scenario = load_scenario(args.scenario)
    stats = asyncio.run(
        play(
            scenario,
            mqtt_url=settings.mqtt.url,
            topic_root=settings.mqtt.topic_root,
            site=args.site,
            encoding=args.encoding,
            speed=args.speed,
            duration_s=args.duration,
            seed=args.seed,
            extra_devices=args.extra_devices,
            truth_path=args.truth,
        )
    )
    print(orjson.dumps(stats.rates()).decode())
    return 0


def _load(settings: Settings, args: argparse.Namespace) -> int:
    from firmware_sim.loadgen import LoadSpec, run_load

    if not settings.mqtt.url:
        print("load mode needs PP_MQTT_URL (mqtt://host:port)", file=sys.stderr)
        return 2
    spec = LoadSpec(
        mqtt_url=settings.mqtt.url,
        topic_root=args.topic_root or settings.mqtt.topic_root,
        site=args.site or "load-site",
        devices=args.devices,
        rate_hz=args.rate,
        duration_s=args.duration if args.duration is not None else 60.0,
        encoding=args.encoding or "binary",
        processes=args.processes,
        gateway_size=args.gateway_size,
        qos=args.qos,
        client=args.client,
        seed=args.seed if args.seed is not None else 1,
        prefix=args.prefix or f"ld{uuid.uuid4().hex[:4]}",
    )
    print(orjson.dumps(run_load(spec)).decode())
    return 0
