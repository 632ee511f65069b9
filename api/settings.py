"""The one `Settings`: the only reader of the environment (prefix ``PP_``)."""

from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api.auth.config import AuthSettings
from detectors.config import DetectorSettings
from firmware_sim.config import SimulatorSettings
from ingest.config import IngestSettings, MqttSettings
from permits.config import PermitSettings
from permits.enforcement.config import EnforcementSettings


class DatabaseSettings(BaseModel):
    """PostgreSQL (or TimescaleDB) connection."""

    url: str | None = Field(
        default=None,
        description="postgresql:// URL. Unset: `permitpulse demo` starts an embedded PostgreSQL "
        "with its data under the data directory.",
    )
    pool_min: int = Field(default=1, ge=1, description="Connections kept open.")

    pool_max: int = Field(default=8, ge=1, description="Most connections open at once.")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Wait for a connection.")
    telemetry_retention_days: int = Field(
        default=90,
        ge=1,
        description="`permitpulse retention` drops telemetry partitions older than this "
        "(company policy; permits, events and the trail are never dropped: GB 30871 B.3 keeps "
        "them at least a year).",
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://", "postgresql+")):
            raise ValueError("must be a postgresql:// URL")
        return v


class ApiSettings(BaseModel):
    """HTTP listener of the API and the control-room page."""

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port (0: any free port).")
    max_query_rows: int = Field(
        default=100_000, ge=1, description="Most telemetry rows one query returns."
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body (HTTP 413 beyond); upload routes set their own limit.",
    )
    ws_compression: bool = Field(
        default=False,
        description="permessage-deflate on WebSockets. Off: on a plant network the CPU it costs "
        "(zlib on every telemetry frame of every client) slows the ingest more than the "
        "bandwidth it saves is worth (benchmarks/bench_fanout.py).",
    )
    public_docs: bool = Field(
        default=True,
        description="Serve /docs, /redoc and /openapi.json without login (they describe the API, "
        "hold no data); false stops serving them.",
    )


class Settings(BaseSettings):
    """Everything configurable; ``PP_SECTION_FIELD`` sets a field, e.g. ``PP_MQTT_URL``."""

    model_config = SettingsConfigDict(
        env_prefix="PP_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        case_sensitive=False,
        extra="ignore",
    )

    data_dir: Path = Field(
        default=Path(".permitpulse"),
        description="Embedded PostgreSQL data, evidence files and caches.",
    )
    log_level: str = Field(default="INFO", description="Root log level.")
    mqtt: MqttSettings = MqttSettings()
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    ingest: IngestSettings = IngestSettings()
    detectors: DetectorSettings = DetectorSettings()
    permits: PermitSettings = PermitSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    enforcement: EnforcementSettings = EnforcementSettings()
