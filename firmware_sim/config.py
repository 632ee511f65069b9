"""Configuration section of the simulator that `permitpulse demo` runs."""

from pydantic import BaseModel, Field


class SimulatorSettings(BaseModel):
    """What `permitpulse demo` plays: a scenario (``demo.yaml`` by default) plus, if asked,
    extra background wearables roaming the site."""

    scenario: str = Field(
        default="demo.yaml",
        description="Scenario file (a path, or the name of a bundled one) the demo plays; "
        "empty: only the background devices.",
    )
    devices: int = Field(
        default=0,
        ge=0,
        le=100_000,
        description="Extra background wearables on no permit, besides the scenario's.",
    )
    seed: int | None = Field(
        default=None, description="Overrides the scenario's seed: the same seed, the same bytes."
    )
    site: str | None = Field(default=None, description="Overrides the scenario's site id.")
    encoding: str | None = Field(
        default=None, pattern="^(json|binary)$", description="Overrides the scenario's encoding."
    )
    speed: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="Simulated seconds per wall-clock second (samples are stamped in simulated "
        "time, so above 1 they run ahead of the clock: the ingest's max_future_ms bounds it).",
    )
