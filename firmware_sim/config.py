"""Configuration section of the simulated fleet the demo runs."""

from pydantic import BaseModel, Field


class SimulatorSettings(BaseModel):
    """The fleet that `permitpulse demo` publishes."""

    devices: int = Field(default=50, ge=0, le=100_000, description="Number of simulated wearables.")
    rate_hz: float = Field(default=1.0, gt=0, le=100, description="Samples per second per device.")
    seed: int = Field(default=1, description="Seed of the fleet: the same seed, the same bytes.")
    site: str = Field(default="demo-site", description="Site id the fleet publishes under.")
    encoding: str = Field(default="binary", pattern="^(json|binary)$", description="Wire encoding.")
