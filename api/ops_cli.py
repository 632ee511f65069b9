"""`permitpulse retention` and `permitpulse backup create|restore|list`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from api.errors import ConfigError

if TYPE_CHECKING:
    from api.settings import Settings


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``retention`` and ``backup`` to the ``permitpulse`` parser."""
    ret = sub.add_parser(
        "retention",
        help="drop telemetry partitions older than N days (never permits or the trail)",
    )
    ret.add_argument(
        "--days", type=int, default=None, help="default: PP_DATABASE_TELEMETRY_RETENTION_DAYS"
    )
    ret.add_argument("--dry-run", action="store_true", help="only list what would be dropped")
    ret.set_defaults(handler=_retention)
    bak = sub.add_parser("backup", help="back up or restore the database (pg_dump/pg_restore)")
    cmds = bak.add_subparsers(title="backup commands", required=True)
    create = cmds.add_parser("create", help="write a custom-format dump of PP_DATABASE_URL")
    create.add_argument("file", type=Path)
    create.set_defaults(handler=_backup_create)
    restore = cmds.add_parser("restore", help="restore a dump into an EMPTY database")
    restore.add_argument("file", type=Path)
    restore.add_argument(
        "--into", required=True, help="postgresql:// URL of the empty target database"
    )
    restore.set_defaults(handler=_backup_restore)
    lst = cmds.add_parser("list", help="list the contents of a dump (checks it is readable)")
    lst.add_argument("file", type=Path)
    lst.set_defaults(handler=_backup_list)


def _url(settings: Settings) -> str:
    if not settings.database.url:
        raise ConfigError("PP_DATABASE_URL is not set")
    return settings.database.url


def _retention(settings: Settings, args: argparse.Namespace) -> int:
    from api.retention import drop_old_telemetry

    days = args.days if args.days is not None else settings.database.telemetry_retention_days
    result = drop_old_telemetry(_url(settings), days=days, dry_run=args.dry_run)
    print(
        orjson.dumps(
            {
                "storage_form": result.storage_form,
                "cutoff": result.cutoff.isoformat(),
                "dry_run": args.dry_run,
                "dropped": result.dropped,
                "kept": result.kept,
            }
        ).decode()
    )
    return 0


def _backup_create(settings: Settings, args: argparse.Namespace) -> int:
    from api.backup import dump, listing

    path = dump(_url(settings), args.file)
    print(orjson.dumps({"file": str(path), "entries": len(listing(path))}).decode())
    return 0


def _backup_restore(_: Settings, args: argparse.Namespace) -> int:
    from api.backup import restore

    restore(args.into, args.file)
    print(f"restored {args.file}")
    return 0


def _backup_list(_: Settings, args: argparse.Namespace) -> int:
    from api.backup import listing

    print("\n".join(listing(args.file)))
    return 0
