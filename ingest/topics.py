"""MQTT topic names of protocol v1: ``{root}/{site}/{device}/{telemetry|cmd|ack|status}`` and
``{root}/{site}/gateway/{gw}/telemetry``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Channel = Literal["telemetry", "cmd", "ack", "status"]

#: Site, device and gateway ids: what the database's CHECK constraints accept.
ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed v1 topic. ``device`` is None on a gateway topic, ``gateway`` None otherwise."""

    site: str
    channel: str
    device: str | None = None
    gateway: str | None = None


def device_topic(root: str, site: str, device: str, channel: Channel) -> str:
    return f"{root}/{site}/{device}/{channel}"


def gateway_topic(root: str, site: str, gateway: str) -> str:
    return f"{root}/{site}/gateway/{gateway}/telemetry"


def telemetry_filters(root: str) -> tuple[str, str]:
    """The two subscriptions that receive every device and gateway telemetry frame."""
    return f"{root}/+/+/telemetry", f"{root}/+/gateway/+/telemetry"


def parse(root: str, topic: str) -> Topic | None:
    """The parts of ``topic`` under ``root``, or None when it is not a v1 topic (including a
    site, device or gateway id the database would refuse)."""
    if not topic.startswith(root + "/"):
        return None
    parts = topic[len(root) + 1 :].split("/")
    if not all(ID_RE.fullmatch(p) for p in parts):
        return None
    if len(parts) == 3 and parts[1] != "gateway":
        return Topic(site=parts[0], device=parts[1], channel=parts[2])
    if len(parts) == 4 and parts[1] == "gateway" and parts[3] == "telemetry":
        return Topic(site=parts[0], gateway=parts[2], channel="telemetry")
    return None
