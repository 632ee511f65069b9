"""Errors of the detectors package."""

from __future__ import annotations

from ingest.errors import PermitPulseError


class DetectorError(PermitPulseError):
    """Raised when the detector layer is used in a way it cannot honour."""


class SnapshotError(DetectorError):
    """Raised when a detector snapshot cannot be restored.

    Attributes:
        reason: what is wrong with the snapshot (version, missing array, shape).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot restore detector snapshot: {reason}")
        self.reason = reason


class ReplayInputError(DetectorError):
    """Raised when a replay input file is malformed.

    Attributes:
        path: the file.
        line: 1-based line (CSV row, or where the JSON entry starts), 0 when unknown.
        reason: what is wrong.
    """

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason
