"""Outside demo mode the service refuses to start with an unset, short or default secret."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr, ValidationError

from api.app import create_app
from api.auth import AuthSettings
from api.auth.tokens import signing_key
from api.errors import ConfigError
from api.settings import Settings

STRONG = "Zq3v9-xL0p_4mN8rT2wY6kB1cF5hJ7sD0gA"


@pytest.mark.parametrize("secret", ["", "changeme", "short-secret", "a" * 40, "secret" * 6])
def test_weak_secret_outside_demo_is_refused_at_load(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    """Empty, short, well-known or low-variety secrets fail validation, naming the variable."""
    monkeypatch.setenv("PP_AUTH_SECRET", secret)
    with pytest.raises(ValidationError, match="PP_AUTH_SECRET"):
        Settings()


def test_weak_secret_in_demo_mode_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Demo mode tolerates a weak secret (it never leaves a laptop)."""
    monkeypatch.setenv("PP_AUTH_SECRET", "changeme")
    monkeypatch.setenv("PP_AUTH_DEMO", "true")
    assert Settings().auth.demo is True


def test_unset_secret_outside_demo_refuses_to_create_the_app() -> None:
    """No secret, no service: create_app raises before anything listens."""
    with pytest.raises(ConfigError, match="PP_AUTH_SECRET is not set"):
        create_app(Settings())


def test_unset_secret_in_demo_mode_is_random_per_start() -> None:
    """Demo without a secret signs with a fresh random key each start."""
    demo = AuthSettings(demo=True)
    a, b = signing_key(demo), signing_key(demo)
    assert a != b
    assert len(a) >= 48


def test_strong_secret_is_used_as_given() -> None:
    """A proper secret is the signing key."""
    assert signing_key(AuthSettings(secret=SecretStr(STRONG))) == STRONG


def test_serve_with_default_secret_exits_without_printing_it() -> None:
    """`permitpulse serve` refuses a default secret, and its message does not echo it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PP_")}
    env.update(
        PP_AUTH_SECRET="replace-me-with-48-random-bytes-from-secrets-token-urlsafe",
        PP_MQTT_URL="mqtt://127.0.0.1:1",
        PP_DATABASE_URL="postgresql://127.0.0.1:1/x",
    )
    r = subprocess.run(
        [sys.executable, "-m", "api", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert "refusing to start" in r.stderr
    assert "PP_AUTH_SECRET" in r.stderr
    assert "replace-me-with-48" not in r.stderr + r.stdout


def test_serve_without_secret_exits_with_hint() -> None:
    """`permitpulse serve` with no secret at all says how to make one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PP_")}
    env.update(PP_MQTT_URL="mqtt://127.0.0.1:1", PP_DATABASE_URL="postgresql://127.0.0.1:1/x")
    r = subprocess.run(
        [sys.executable, "-m", "api", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert "PP_AUTH_SECRET is not set" in r.stderr
    assert "secrets.token_urlsafe" in r.stderr
