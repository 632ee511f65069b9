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
    reconnect_max_s: float = Field(
        default=10.0,
        gt=0,
        description="Cap of the jittered exponential backoff between broker reconnects.",
    )


class PlausibilityLimits(BaseModel):
    """Values outside these bounds cannot come from a working sensor: such samples are
    dead-lettered. These are physical sanity bounds, not alarm thresholds (those live in the
    detector settings); the gross-range test of the signal-quality detector is narrower."""

    hr_max: float = Field(default=300.0, description="bpm; above any recorded human heart rate.")
    skin_temp_min: float = Field(default=0.0, description="°C; a skin sensor reads no lower.")
    skin_temp_max: float = Field(default=60.0, description="°C; a skin sensor reads no higher.")
    gps_acc_max: float = Field(default=100_000.0, description="m; a larger error is no fix at all.")


class IngestSettings(BaseModel):
    """Micro-batching, bounds, rate limits and plausibility windows of the telemetry ingest."""

    batch_max_samples: int = Field(
        default=5000,
        ge=1,
        description="Most samples in one micro-batch (one transaction). While a batch commits the "
        "next one grows, up to this size.",
    )
    batch_max_ms: int = Field(
        default=10,
        ge=0,
        description="Once the writer is free, a micro-batch waits at most this long for more "
        "samples (0: written at once). Keep it well below max_inflight_messages / message rate "
        "of the broker, or the broker stops sending while the batch waits (docs/operations.md).",
    )
    queue_max_messages: int = Field(
        default=20_000,
        ge=1,
        description="Most messages held between receive and write; when reached, the ingest "
        "stops reading from the broker, which holds the rest.",
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
    rate_limit_samples_per_s: float = Field(
        default=50.0,
        ge=0,
        description="Per-device sustained sample rate above which samples are dropped and "
        "counted, so one flooding device cannot starve the others; 0 disables. Devices sample at "
        "1 Hz (SPEC.md §3); the margin is company policy.",
    )
    rate_limit_burst_samples: int = Field(
        default=100_000,
        ge=1,
        description="Per-device burst allowance on top of the rate: a store-and-forward replay "
        "of a day at 1 Hz (86 400 samples) passes in one go (company policy).",
    )
    write_retry_max_s: float = Field(
        default=10.0,
        gt=0,
        description="Cap of the jittered exponential backoff while the database is unreachable; "
        "the batch is held and retried, never dropped.",
    )
    hook_queue_batches: int = Field(
        default=8,
        ge=1,
        description="Stored batches waiting for the detectors; when full, writing (and so "
        "acknowledging, and so receiving) waits.",
    )
    close_timeout_s: float = Field(
        default=10.0,
        ge=0,
        description="On shutdown, how long to keep committing and acknowledging what was "
        "received; anything left unacknowledged is redelivered by the broker.",
    )
    device_touch_s: float = Field(
        default=60.0,
        gt=0,
        description="How often a device's last_seen in the devices table is refreshed.",
    )
    plausibility: PlausibilityLimits = PlausibilityLimits()
