"""MQTT connection details shared by the ingest, the simulator and the API: URL parsing,
client construction and reconnect backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens, parsed from ``mqtt://[user[:password]@]host[:port]``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"unsupported broker URL scheme {parts.scheme!r} (use mqtt://)")
        if not parts.hostname:
            raise ValueError(f"broker URL without a host: {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 1883,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def client(url: str, **kwargs: Any) -> aiomqtt.Client:
    """An aiomqtt client (MQTT 3.1.1, which every broker we support speaks) for ``url``."""
    addr = BrokerAddress.from_url(url)
    kwargs.setdefault("protocol", aiomqtt.ProtocolVersion.V311)
    return aiomqtt.Client(
        addr.host, addr.port, username=addr.username, password=addr.password, **kwargs
    )


def backoff_s(attempt: int, *, base: float = 0.2, cap: float = 10.0) -> float:
    """Capped exponential backoff with full jitter, for reconnect loops."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 16)))
