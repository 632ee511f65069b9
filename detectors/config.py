"""Configuration section of the detectors: every threshold with its source."""

from pydantic import BaseModel


class DetectorSettings(BaseModel):
    """Thresholds of the detector layer (filled in by the detectors package)."""
