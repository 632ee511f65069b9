"""Errors of the ingest package."""


class PermitPulseError(Exception):
    """Root of every error PermitPulse raises on purpose."""


class DecodeError(PermitPulseError):
    """Raised when a payload is not a valid wire-format v1 frame.

    Attributes:
        reason: a short, human-readable statement of what is wrong.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
