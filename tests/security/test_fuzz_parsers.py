"""Fuzzing the other parsers that face input: MQTT topics, the environment (settings),
broker URLs, database URLs, Mosquitto password lines."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_settings import SettingsError

from api import cli
from api.broker_acl import read_passwd, verify_mosquitto_hash
from api.settings import Settings
from api.settings_doc import rows
from api.storage import sqlalchemy_url
from ingest.mqtt import BrokerAddress
from ingest.topics import device_topic, gateway_topic, parse
from ingest.wire import DEVICE_ID_RE

ROOT = "pp/v1"
segment = st.text(
    alphabet=st.sampled_from("abcXYZ019._-/ +#\n\x00é"), min_size=0, max_size=8
) | st.sampled_from(["gateway", "telemetry", "cmd", "s1", "d1"])


@given(st.lists(segment, min_size=0, max_size=6).map("/".join), st.booleans())
@settings(max_examples=2000)
def test_topic_parse_accepts_only_well_formed_ids_and_round_trips(rest: str, rooted: bool) -> None:
    """parse never raises; what it accepts has valid ids and rebuilds the same topic."""
    topic = f"{ROOT}/{rest}" if rooted else rest
    parsed = parse(ROOT, topic)
    if parsed is None:
        return
    assert DEVICE_ID_RE.fullmatch(parsed.site)
    if parsed.gateway is not None:
        assert parsed.device is None
        assert DEVICE_ID_RE.fullmatch(parsed.gateway)
        assert gateway_topic(ROOT, parsed.site, parsed.gateway) == topic
    else:
        assert parsed.device is not None
        assert DEVICE_ID_RE.fullmatch(parsed.device)
        assert parsed.device != "gateway"
        assert device_topic(ROOT, parsed.site, parsed.device, parsed.channel) == topic  # type: ignore[arg-type]


ENV_VARS = sorted({label.strip("`").split("`")[0] for label, _, _ in rows(Settings)})
env_value = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "1e309", "nan", "true", "null", "{}", "[]", '{"hr_max": "x"}']),
    st.integers(-(2**70), 2**70).map(str),
)


@given(st.dictionaries(st.sampled_from(ENV_VARS), env_value, min_size=1, max_size=4))
@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_settings_from_any_environment_load_or_fail_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """Any PP_ values: Settings loads, or fails with ValidationError/SettingsError only; the
    CLI then exits 2 with a message that never echoes the auth secret."""
    with monkeypatch.context() as m:
        for key, value in env.items():
            m.setenv(key, value.replace("\x00", ""))
        with contextlib.suppress(ValidationError, SettingsError):
            Settings()
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main([])  # loads settings, then prints usage: touches nothing
    assert code == 2
    secret = env.get("PP_AUTH_SECRET", "").replace("\x00", "")
    if len(secret) >= 6:
        assert secret not in err.getvalue()


@given(st.text(max_size=60) | st.builds("mqtt://{}".format, st.text(max_size=40)))
@settings(max_examples=1000)
def test_broker_url_parses_or_raises_value_error(url: str) -> None:
    """A broker URL is an address or a ValueError (never another exception)."""
    try:
        addr = BrokerAddress.from_url(url)
    except ValueError:
        return
    assert addr.host
    assert 0 < addr.port < 65536


@given(st.text(max_size=60))
@settings(max_examples=500)
def test_database_url_converts_or_raises_value_error(url: str) -> None:
    """Only postgres URLs convert for alembic; everything else is a ValueError."""
    try:
        converted = sqlalchemy_url(url)
    except ValueError:
        return
    assert converted.startswith("postgresql+psycopg://")


@given(st.text(max_size=200), st.text(max_size=20))
@settings(max_examples=500)
def test_mosquitto_password_lines_parse_and_verify_without_crashing(
    text: str, password: str
) -> None:
    """Any password-file content parses to entries; any entry verifies to a bool."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "passwd"
        path.write_text(text.replace("\x00", ""), encoding="utf-8", errors="surrogatepass")
        try:
            entries = read_passwd(path)
        except UnicodeDecodeError:
            return
    for encoded in entries.values():
        assert verify_mosquitto_hash(encoded, password) in (True, False)
