"""`permitpulse devices provision`: broker credentials and ACL for devices and gateways."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from api.broker_acl import (
    MOSQUITTO_CONF,
    BrokerAccount,
    find_mosquitto_passwd,
    hash_with_mosquitto_passwd,
    mosquitto_hash,
    new_password,
    read_passwd,
    render_acl,
    render_passwd,
)
from api.errors import ProvisioningError

if TYPE_CHECKING:
    from api.settings import Settings

MANIFEST = "accounts.json"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``devices provision`` to the ``permitpulse`` parser."""
    devices = sub.add_parser("devices", help="device broker credentials")
    cmds = devices.add_subparsers(title="devices commands", required=True)
    p = cmds.add_parser(
        "provision",
        help="create per-device broker credentials, a Mosquitto password file and ACL",
        description="Adds accounts to DIR (accounts.json, passwd, acl, mosquitto-permitpulse.conf"
        "); the new passwords go to DIR/credentials-<time>.csv (mode 0600) for flashing the "
        "devices — move it off the broker host. Reload Mosquitto (SIGHUP) afterwards.",
    )
    p.add_argument("--out", type=Path, required=True, help="directory of the broker's files")
    p.add_argument("--site", help="site of the devices and gateways named here")
    p.add_argument("--device", action="append", default=[], dest="devices", help="device id")
    p.add_argument("--devices-file", type=Path, help="file with one device id per line")
    p.add_argument("--count", type=int, default=0, help="N devices named PREFIX0001...")
    p.add_argument("--prefix", default="dev-", help="prefix of --count device ids")
    p.add_argument("--gateway", action="append", default=[], dest="gateways", help="gateway id")
    p.add_argument(
        "--service-user",
        default="permitpulse",
        help="account of the PermitPulse service itself (created once)",
    )
    p.add_argument(
        "--rotate", action="store_true", help="new passwords for the named existing accounts"
    )
    p.add_argument(
        "--hasher",
        choices=("auto", "mosquitto_passwd", "python"),
        default="auto",
        help="auto: mosquitto_passwd when installed, else the same PBKDF2-SHA512 in Python",
    )
    p.set_defaults(handler=provision_command)


@dataclass
class ProvisionResult:
    created: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    kept: int = 0
    credentials: Path | None = None
    hasher: str = "python"


def provision_command(settings: Settings, args: argparse.Namespace) -> int:
    ids = list(args.devices)
    if args.devices_file:
        ids += [ln.strip() for ln in args.devices_file.read_text().splitlines() if ln.strip()]
    ids += [f"{args.prefix}{i:04d}" for i in range(1, args.count + 1)]
    if (ids or args.gateways) and not args.site:
        raise ProvisioningError("--site is required with devices or gateways")
    wanted = [BrokerAccount(d, "device", args.site) for d in ids]
    wanted += [BrokerAccount(g, "gateway", args.site) for g in args.gateways]
    wanted.append(BrokerAccount(args.service_user, "service"))
    result = provision(
        args.out,
        wanted,
        topic_root=settings.mqtt.topic_root,
        rotate=args.rotate,
        hasher=args.hasher,
    )
    print(
        orjson.dumps(
            {
                "created": len(result.created),
                "rotated": len(result.rotated),
                "kept": result.kept,
                "hasher": result.hasher,
                "credentials": str(result.credentials) if result.credentials else None,
                "passwd": str(args.out / "passwd"),
                "acl": str(args.out / "acl"),
            }
        ).decode()
    )
    return 0


def provision(
    out: Path,
    wanted: Sequence[BrokerAccount],
    *,
    topic_root: str,
    rotate: bool = False,
    hasher: str = "auto",
) -> ProvisionResult:
    """Add ``wanted`` accounts to the files in ``out`` (existing ones keep their passwords
    unless ``rotate``) and rewrite the password file, the ACL and the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    known = _read_manifest(out)
    passwd = read_passwd(out / "passwd")
    result = ProvisionResult()
    fresh: dict[str, str] = {}
    for acc in _dedupe(wanted):
        old = known.get(acc.username)
        if old is not None and old != acc:
            raise ProvisioningError(
                f"{acc.username!r} exists as {old.kind} of site {old.site!r}; not changed"
            )
        if old is None or acc.username not in passwd:
            fresh[acc.username] = new_password()
            result.created.append(acc.username)
        elif rotate and acc.kind != "service":
            fresh[acc.username] = new_password()
            result.rotated.append(acc.username)
        known[acc.username] = acc
    result.kept = len(known) - len(fresh)
    binary = find_mosquitto_passwd() if hasher in ("auto", "mosquitto_passwd") else None
    if hasher == "mosquitto_passwd" and binary is None:
        raise ProvisioningError("mosquitto_passwd is not installed")
    if binary:
        passwd.update(hash_with_mosquitto_passwd(fresh, binary))
        result.hasher = "mosquitto_passwd"
    else:
        passwd.update({user: mosquitto_hash(pw) for user, pw in fresh.items()})
    _write(out / "passwd", render_passwd({u: passwd[u] for u in known}), 0o640)
    _write(out / "acl", render_acl(known.values(), topic_root=topic_root), 0o640)
    _write(out / MANIFEST, _manifest(known.values(), topic_root), 0o640)
    _write(
        out / "mosquitto-permitpulse.conf",
        MOSQUITTO_CONF.format(passwd=(out / "passwd").resolve(), acl=(out / "acl").resolve()),
        0o644,
    )
    if fresh:
        result.credentials = _write_credentials(out, [known[u] for u in fresh], fresh)
    return result


def _dedupe(accounts: Iterable[BrokerAccount]) -> list[BrokerAccount]:
    seen: dict[str, BrokerAccount] = {}
    for acc in accounts:
        if acc.username in seen and seen[acc.username] != acc:
            raise ProvisioningError(f"{acc.username!r} given twice with different roles")
        seen[acc.username] = acc
    return list(seen.values())


def _read_manifest(out: Path) -> dict[str, BrokerAccount]:
    path = out / MANIFEST
    if not path.exists():
        return {}
    data = orjson.loads(path.read_bytes())
    return {
        a["username"]: BrokerAccount(a["username"], a["kind"], a.get("site"))
        for a in data["accounts"]
    }


def _manifest(accounts: Iterable[BrokerAccount], topic_root: str) -> str:
    rows = [
        {"username": a.username, "kind": a.kind, "site": a.site}
        for a in sorted(accounts, key=lambda a: a.username)
    ]
    return orjson.dumps(
        {"topic_root": topic_root, "accounts": rows}, option=orjson.OPT_INDENT_2
    ).decode()


def _write(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` atomically (a reloading broker never reads half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _write_credentials(out: Path, accounts: list[BrokerAccount], passwords: dict[str, str]) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = out / f"credentials-{stamp}.csv"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["username", "kind", "site", "password"])
        for acc in accounts:
            writer.writerow([acc.username, acc.kind, acc.site or "", passwords[acc.username]])
    return path
