"""Topic names of protocol v1."""

from __future__ import annotations

import pytest

from ingest.topics import Topic, device_topic, gateway_topic, parse, telemetry_filters


def test_parse_device_topic_names_site_device_and_channel() -> None:
    """`{root}/{site}/{device}/telemetry`."""
    assert parse("pp/v1", device_topic("pp/v1", "s1", "d1", "telemetry")) == Topic(
        site="s1", device="d1", channel="telemetry"
    )


def test_parse_gateway_topic_names_the_gateway() -> None:
    """`{root}/{site}/gateway/{gw}/telemetry`."""
    assert parse("pp/v1", gateway_topic("pp/v1", "s1", "gw1")) == Topic(
        site="s1", gateway="gw1", channel="telemetry"
    )


@pytest.mark.parametrize(
    "topic",
    [
        "pp/v1/s1/d1",
        "other/v1/s1/d1/telemetry",
        "pp/v1//d1/telemetry",
        "pp/v1/s1/gateway/telemetry",
        "pp/v1/site one/d1/telemetry",
        "pp/v1/s1\n/d1/telemetry",
        "pp/v1/-s1/d1/telemetry",
        f"pp/v1/{'s' * 65}/d1/telemetry",
        "pp/v1/s1/gateway/g\u00e9/telemetry",
    ],
)
def test_parse_foreign_topic_is_none(topic: str) -> None:
    """Anything else is not ours, nor is an id the database would refuse."""
    assert parse("pp/v1", topic) is None


def test_telemetry_filters_cover_device_and_gateway_topics() -> None:
    """Two subscriptions receive every frame."""
    assert telemetry_filters("r") == ("r/+/+/telemetry", "r/+/gateway/+/telemetry")
