"""Pydantic models of the HTTP API's requests and replies."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field


class ErrorRead(BaseModel):
    """Every error reply."""

    detail: str = Field(description="What went wrong, for a person.")
    code: str = Field(description="What went wrong, for a program.")


class SampleRead(BaseModel):
    """One stored telemetry sample; ``null`` = the device did not measure it."""

    device_id: str
    seq: int
    ts: dt.datetime
    ts_ms: int
    hr: float | None = Field(description="Heart rate, bpm.")
    skin_temp: float | None = Field(description="Skin temperature, °C.")
    spo2: float | None = Field(description="Oxygen saturation, %.")
    lat: float | None
    lon: float | None
    gps_acc: float | None = Field(description="GPS accuracy, m.")
    motion: float | None = Field(description="Motion intensity, g.")
    battery: float | None = Field(description="Battery, %.")
    flags: int = Field(description="Bit 0 SOS, bit 1 fall, bit 2 replayed from the device buffer.")
    received_at: dt.datetime


class TelemetryPage(BaseModel):
    """Samples of one device in a time window, oldest first."""

    device_id: str
    start: dt.datetime
    end: dt.datetime
    count: int
    truncated: bool = Field(description="True when `limit` cut the window short.")
    samples: list[SampleRead]


class ComponentHealth(BaseModel):
    ok: bool
    detail: str = ""


class HealthRead(BaseModel):
    """Liveness of every part the service depends on."""

    status: Literal["ok", "degraded"]
    broker: ComponentHealth
    database: ComponentHealth
    storage_form: str = Field(description="'timescaledb' or 'native-partitions'.")
    ingest: dict[str, int | float | bool]
