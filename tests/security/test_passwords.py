"""Password hashing (argon2id), policy and rehash on parameter change."""

from __future__ import annotations

import pytest

from api.auth import AuthSettings
from api.auth.passwords import Passwords
from api.errors import WeakPasswordError

CHEAP = AuthSettings(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)


def test_hash_is_argon2id_salted_and_verifies_only_the_password() -> None:
    """Two hashes of one password differ (salt); only the right password verifies."""
    pw = Passwords(CHEAP)
    a, b = pw.hash("correct horse"), pw.hash("correct horse")
    assert a.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert a != b
    assert pw.verify(a, "correct horse")
    assert not pw.verify(a, "correct horsE")
    assert not pw.verify("not a hash", "correct horse")


def test_verify_without_hash_is_false_but_still_hashes() -> None:
    """An unknown user (no hash) never verifies, even with the dummy's own text."""
    pw = Passwords(CHEAP)
    assert not pw.verify(None, "no such user: equalise the time of a failed lookup")
    assert not pw.verify(None, "")


def test_hash_made_with_weaker_parameters_needs_rehash() -> None:
    """Raising the cost makes old hashes due for an upgrade at the next login."""
    old = Passwords(CHEAP).hash("pw-123456789012")
    stronger = Passwords(CHEAP.model_copy(update={"argon2_time_cost": 2}))
    assert stronger.needs_rehash(old)
    assert stronger.verify(old, "pw-123456789012")
    assert not Passwords(CHEAP).needs_rehash(old)


@pytest.mark.parametrize(
    ("password", "match"),
    [("short", "shorter than 12"), ("Operator.One", "equals the user name")],
)
def test_policy_refuses_short_or_username_passwords(password: str, match: str) -> None:
    """At least min_password_chars, and not the user name."""
    with pytest.raises(WeakPasswordError, match=match):
        Passwords(CHEAP).check_policy(password, username="operator.one")


async def test_async_hash_and_verify_run_off_the_loop() -> None:
    """ahash/averify give the same answers as the blocking calls."""
    pw = Passwords(CHEAP)
    h = await pw.ahash("async password 1")
    assert await pw.averify(h, "async password 1")
    assert not await pw.averify(h, "async password 2")
