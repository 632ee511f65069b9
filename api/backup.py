"""Database backup and restore with the PostgreSQL client tools (``pg_dump -Fc`` and
``pg_restore``). Passwords go to the tools through the environment, never the command line."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from api.errors import OperationError


@dataclass(frozen=True, slots=True)
class Tool:
    path: Path
    major: int


def server_major(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.info.server_version) // 10_000


def find_tool(name: str, *, at_least: int) -> Tool:
    """``pg_dump`` / ``pg_restore`` of a major version not older than the server's (an older
    pg_dump refuses a newer server): the matching Debian one first, then any on PATH."""
    candidates = [Path(p) for p in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))]
    if found := shutil.which(name):
        candidates.append(Path(found))
    usable = [t for t in (_probe(c) for c in candidates) if t and t.major >= at_least]
    if not usable:
        raise OperationError(name, f"no {name} of PostgreSQL {at_least} or newer is installed")
    return min(usable, key=lambda t: t.major)


def _probe(path: Path) -> Tool | None:
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    version = out.strip().split()[-1]
    try:
        return Tool(path, int(version.split(".")[0]))
    except ValueError:
        return None


def _split(url: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, environment carrying it)."""
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    if password := params.pop("password", None):
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def dump(url: str, out: Path) -> Path:
    """Write a custom-format dump of the whole database to ``out`` and check it is readable."""
    tool = find_tool("pg_dump", at_least=server_major(url))
    conninfo, env = _split(url)
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([str(tool.path), "--format=custom", "--no-owner", f"--file={out}", conninfo], env)
    out.chmod(0o600)  # the dump holds personal data and password hashes
    listing(out)
    return out


def listing(dump_file: Path) -> list[str]:
    """The table of contents of a dump (fails on a damaged file)."""
    tool = find_tool("pg_restore", at_least=0)
    result = _run([str(tool.path), "--list", str(dump_file)], dict(os.environ))
    return [ln for ln in result.splitlines() if ln and not ln.startswith(";")]


def restore(url: str, dump_file: Path) -> None:
    """Restore ``dump_file`` into the empty database ``url`` in one transaction."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchone()
    if row and row[0]:
        raise OperationError("restore", "the target database is not empty; create a new one")
    tool = find_tool("pg_restore", at_least=server_major(url))
    conninfo, env = _split(url)
    _run(
        [
            str(tool.path),
            "--exit-on-error",
            "--single-transaction",
            "--no-owner",
            f"--dbname={conninfo}",
            str(dump_file),
        ],
        env,
    )


def _run(cmd: list[str], env: dict[str, str]) -> str:
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    except OSError as exc:
        raise OperationError(Path(cmd[0]).name, str(exc)) from exc
    if result.returncode != 0:
        raise OperationError(Path(cmd[0]).name, result.stderr.strip()[-2000:])
    return result.stdout
