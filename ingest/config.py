"""Configuration sections owned by the ingest: the MQTT connection and the ingest pipeline."""

from pydantic import BaseModel, Field


class MqttSettings(BaseModel):
    """How every PermitPulse process reaches the MQTT broker."""

    url: str | None = Field(
        default=None,
        description="Broker URL, mqtt://[user:pass@]host:port. Unset: `permitpulse demo` starts an "
        "embedded broker (amqtt) in-process.",
    )
    topic_root: str = Field(
        default="pp/v1",
        description="Prefix of every topic; tests give each test its own root.",
    )
    client_id: str = Field(
        default="permitpulse-ingest",
        description="Client id of the ingest's persistent session.",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive.")
    qos: int = Field(default=1, ge=0, le=1, description="QoS of the telemetry subscription.")


class PlausibilityLimits(BaseModel):
    """Values outside these bounds cannot come from a working sensor: such samples are
    dead-lettered. These are physical sanity bounds, not alarm thresholds (those live in the
    detector settings); the gross-range test of the signal-quality detector is narrower."""

    hr_max: float = Field(default=300.0, description="bpm; above any recorded human heart rate.")
    skin_temp_min: float = Field(default=0.0, description="°C; a skin sensor reads no lower.")
    skin_temp_max: float = Field(default=60.0, description="°C; a skin sensor reads no higher.")
    gps_acc_max: float = Field(default=100_000.0, description="m; a larger error is no fix at all.")


class IngestSettings(BaseModel):
    """Micro-batching, bounds and plausibility windows of the telemetry ingest."""

    batch_max_samples: int = Field(
        default=5000, ge=1, description="Flush a micro-batch once it holds this many samples."
    )
    batch_max_ms: int = Field(
        default=200,
        ge=1,
        description="Flush a micro-batch at the latest this long after its first sample.",
    )
    queue_max_messages: int = Field(
        default=20_000,
        ge=1,
        description="Bound of the receive queue; when full, the ingest stops reading from the "
        "broker.",
    )
    max_payload_bytes: int = Field(
        default=1_048_576, ge=64, description="Larger payloads are refused and dead-lettered."
    )
    max_future_ms: int = Field(
        default=300_000,
        ge=0,
        description="Samples stamped further ahead of the server clock are implausible (clock skew "
        "allowance, company policy).",
    )
    max_past_ms: int = Field(
        default=7 * 24 * 3_600_000,
        ge=0,
        description="Samples older than this are implausible: longer than any device buffers "
        "(store and forward) (company policy).",
    )
    plausibility: PlausibilityLimits = PlausibilityLimits()
