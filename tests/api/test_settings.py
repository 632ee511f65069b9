"""Settings: the environment is read in one place, with the PP_ prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from api.settings import Settings


def test_settings_env_sets_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """PP_SECTION_FIELD reaches the nested field; PP_DATA_DIR the top-level one."""
    monkeypatch.setenv("PP_MQTT_URL", "mqtt://broker:1884")
    monkeypatch.setenv("PP_DATABASE_URL", "postgresql://db/pp")
    monkeypatch.setenv("PP_INGEST_BATCH_MAX_MS", "50")
    monkeypatch.setenv("PP_DATA_DIR", "/srv/pp")
    s = Settings()
    assert s.mqtt.url == "mqtt://broker:1884"
    assert s.database.url == "postgresql://db/pp"
    assert s.ingest.batch_max_ms == 50
    assert s.data_dir == Path("/srv/pp")


def test_settings_defaults_run_the_demo() -> None:
    """With nothing set, the demo embeds its services."""
    s = Settings()
    assert s.mqtt.url is None
    assert s.database.url is None
    assert s.api.port == 8000


def test_settings_invalid_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value outside its bounds refuses to load, naming the field."""
    monkeypatch.setenv("PP_INGEST_BATCH_MAX_SAMPLES", "0")
    with pytest.raises(ValidationError, match="batch_max_samples"):
        Settings()
