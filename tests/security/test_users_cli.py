"""`permitpulse users ...`: the way to create the first administrator on a real install."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import psycopg

from api.auth import AuthSettings
from api.auth.passwords import Passwords

CHEAP = {
    "PP_AUTH_ARGON2_TIME_COST": "1",
    "PP_AUTH_ARGON2_MEMORY_KIB": "1024",
    "PP_AUTH_ARGON2_PARALLELISM": "1",
}


def _run(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PP_")}
    env.update(CHEAP, PP_DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-m", "api", "users", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _hash(database_url: str, username: str) -> tuple[str, bool, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT password_hash, disabled, token_version FROM users WHERE username = %s",
            (username,),
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_users_create_generates_password_once_and_stores_only_its_hash(
    database_url: str,
) -> None:
    """Without a password given, one is generated, printed once, and stored as argon2id."""
    r = _run(database_url, "create", "root", "--role", "admin", "--all-sites")
    assert r.returncode == 0, r.stderr
    out = orjson.loads(r.stdout)
    assert out["roles"] == ["admin"]
    assert out["all_sites"] is True
    stored, disabled, _ = _hash(database_url, "root")
    assert stored.startswith("$argon2id$")
    assert out["password"] not in stored
    assert Passwords(AuthSettings()).verify(stored, out["password"])
    assert not disabled


def test_users_create_with_sites_creates_missing_sites_and_lists(database_url: str) -> None:
    """Sites named on the command line are created; `users list` shows the user."""
    r = _run(
        database_url,
        "create",
        "sup.1",
        "--role",
        "supervisor",
        "--site",
        "plant-7",
        "--password-stdin",
        stdin="a long enough passphrase\n",
    )
    assert r.returncode == 0, r.stderr
    listed = _run(database_url, "list")
    users = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert [(u["username"], u["sites"]) for u in users] == [("sup.1", ["plant-7"])]


def test_users_passwd_and_disable_revoke_tokens(database_url: str) -> None:
    """A new password and disabling each bump the token version (refresh tokens die)."""
    _run(database_url, "create", "op", "--role", "control_room", "--all-sites")
    _, _, tv0 = _hash(database_url, "op")
    r = _run(database_url, "passwd", "op", "--password-stdin", stdin="another passphrase!\n")
    assert r.returncode == 0, r.stderr
    stored, _, tv1 = _hash(database_url, "op")
    assert Passwords(AuthSettings()).verify(stored, "another passphrase!")
    assert _run(database_url, "disable", "op").returncode == 0
    _, disabled, tv2 = _hash(database_url, "op")
    assert (tv0 < tv1 < tv2, disabled) == (True, True)


def test_users_create_errors_exit_2_with_a_message(database_url: str) -> None:
    """A weak password or a taken name is a message and exit code 2, not a traceback."""
    weak = _run(
        database_url, "create", "x1", "--role", "worker", "--password-stdin", stdin="short\n"
    )
    _run(database_url, "create", "x2", "--role", "worker", "--all-sites")
    taken = _run(database_url, "create", "x2", "--role", "worker", "--all-sites")
    assert (weak.returncode, taken.returncode) == (2, 2)
    assert "shorter than 12" in weak.stderr
    assert "exists" in taken.stderr
    assert "Traceback" not in weak.stderr + taken.stderr
