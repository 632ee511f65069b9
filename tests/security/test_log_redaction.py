"""No secrets in logs: passwords, tokens, keys and URL passwords are masked by the filter."""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import logredact
from api.auth import Principal, Role, TokenService
from api.broker_acl import mosquitto_hash

TOKEN = (
    TokenService(
        key="k" * 8 + "redaction-test-key-0123456789abcdef",
        issuer="permitpulse",
        access_ttl=dt.timedelta(minutes=1),
        refresh_ttl=dt.timedelta(minutes=1),
    )
    .access_token(Principal("a", frozenset({Role.ADMIN}), None))
    .token
)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose handler formats through the redacting filter into a buffer."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(detail)s"))
    logger = logging.getLogger("pp.test.redaction")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    assert logredact.install([logger.name]) == 1
    assert logredact.install([logger.name]) == 0  # idempotent
    yield logger, buf
    logger.handlers = []


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("login with password=hunter2-hunter2 failed", "hunter2-hunter2"),
        ('body {"username": "a", "password": "s3cr3t pass"}', "s3cr3t pass"),
        (f"Authorization: Bearer {TOKEN}", TOKEN),
        (f"got token {TOKEN} from client", TOKEN),
        ("connecting to postgresql://pp:db-pass-99@db:5432/pp", "db-pass-99"),
        ("broker mqtt://ingest:mq-pass-77@broker:1883", "mq-pass-77"),
        ("PP_AUTH_SECRET=abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345"),
        ("refresh_token: 'rt-123-456'", "rt-123-456"),
        ("api_key=AKIA1234567890", "AKIA1234567890"),
        ("stored $argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA for bob", "c2FsdA$aGFzaA"),
        (f"device line d1:{mosquitto_hash('x')}", mosquitto_hash("x").split("$")[4]),
    ],
)
def test_secret_in_message_is_masked(
    captured: tuple[logging.Logger, io.StringIO], message: str, secret: str
) -> None:
    """Each kind of secret in a log message comes out as ***."""
    logger, buf = captured
    logger.info("%s", message, extra={"detail": ""})
    out = buf.getvalue()
    assert secret not in out
    assert "***" in out


def test_secret_in_extra_args_and_traceback_is_masked(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    """extra= fields, %-args and exception text are redacted too."""
    logger, buf = captured
    try:
        raise RuntimeError("cannot connect to postgresql://u:tb-secret-1@h/db")
    except RuntimeError:
        logger.exception(
            "failed for %s", "password=arg-secret-2", extra={"detail": {"token": "x-secret-3"}}
        )
    out = buf.getvalue()
    for secret in ("tb-secret-1", "arg-secret-2", "x-secret-3"):
        assert secret not in out
    assert "RuntimeError" in out


def test_ordinary_messages_pass_unchanged(captured: tuple[logging.Logger, io.StringIO]) -> None:
    """Redaction does not eat normal operational text."""
    logger, buf = captured
    logger.info(
        "ingest subscribed to %s, %d samples", "pp/v1/+/+/telemetry", 42, extra={"detail": "ok"}
    )
    assert buf.getvalue() == "INFO ingest subscribed to pp/v1/+/+/telemetry, 42 samples ok\n"


secrets_text = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="\"',;&}]@/:"),
    min_size=6,
    max_size=30,
)


@given(secret=secrets_text, key=st.sampled_from(["password", "secret", "token", "passwd"]))
@settings(max_examples=300)
def test_any_secret_after_a_secret_key_is_masked(secret: str, key: str) -> None:
    """Whatever the value after password=/secret: etc., it does not survive redaction."""
    for text in (f"{key}={secret}", f'"{key}": "{secret}"', f"x {key}: {secret} y"):
        assert secret not in logredact.redact(text)


@given(password=secrets_text)
@settings(max_examples=200)
def test_any_url_password_is_masked(password: str) -> None:
    """The password part of any scheme://user:password@host is masked."""
    assert password not in logredact.redact(f"url mqtt://user:{password}@host:1883/x")
