"""`permitpulse replay`: recorded telemetry through the detectors and the rule engine, offline.

The composition lives here, in the API layer: the detectors' replay (`detectors.replay`)
knows nothing of permits; the permits' rule engine plugs into its `ActionSource` seam
(`permits.enforcement.replay`), with the rules live uses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.settings import Settings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``replay`` command to the ``permitpulse`` parser."""
    r = sub.add_parser(
        "replay",
        help="run a telemetry CSV through the detectors and the rule engine; write alarms and "
        "actions as JSON lines",
    )
    r.add_argument("--telemetry", type=Path, required=True, help="CSV: " + _header())
    r.add_argument("--workers", type=Path, required=True, help="JSON list of worker profiles")
    r.add_argument("--permits", type=Path, default=None, help="JSON list of permits (active)")
    r.add_argument("--out", type=Path, required=True, help="output JSON lines (EVENTS.jsonl)")
    r.add_argument(
        "--rules",
        type=Path,
        default=None,
        help="rules file (default: PP_ENFORCEMENT_RULES_FILE, else the shipped default rules)",
    )
    r.add_argument("--site", default=None, help="site id whose detector overrides apply")
    r.add_argument("--batch-ms", type=int, default=1000, help="data time per batch (ms)")
    r.set_defaults(handler=run_replay)


def _header() -> str:
    from detectors.models import CSV_HEADER  # light: no Numba at CLI start

    return ",".join(CSV_HEADER)


def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    from detectors.errors import ReplayInputError
    from detectors.pipeline import DetectorPipeline
    from detectors.replay import read_permits, read_telemetry, read_workers, replay, write_jsonl
    from permits.enforcement.replay import (
        ReplayContext,
        ReplayEnforcement,
        permit_type,
    )
    from permits.enforcement.rules import DEFAULT_RULES, RulesFileError, load

    if args.batch_ms <= 0:
        print("replay: --batch-ms must be positive", file=sys.stderr)
        return 2
    try:
        rules = load(args.rules or settings.enforcement.rules_file or DEFAULT_RULES)
        tel = read_telemetry(args.telemetry)
        workers = read_workers(args.workers)
        permits = read_permits(args.permits, permit_type=permit_type) if args.permits else []
    except (ReplayInputError, RulesFileError, OSError, UnicodeDecodeError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    pipeline = DetectorPipeline(settings.detectors, site=args.site)
    engine = ReplayEnforcement(rules, ReplayContext(fences=permits, workers=workers))
    tmp = args.out.with_name(args.out.name + ".tmp")
    with tmp.open("wb") as out:
        n = write_jsonl(
            replay(
                tel,
                workers=workers,
                permits=permits,
                settings=settings.detectors,
                batch_ms=args.batch_ms,
                actions=engine,
                pipeline=pipeline,
            ),
            out,
        )
    tmp.replace(args.out)
    print(
        f"replay: {len(tel)} samples of {len(tel.devices)} devices → {n} records"
        f" ({len(engine.decisions)} decisions) in {args.out}"
    )
    return 0
