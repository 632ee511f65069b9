"""Errors of the ingest package."""

from typing import Literal

#: Why a payload was not stored, as a short code (a metric label and a dead-letter category).
RejectKind = Literal[
    "empty",
    "encoding",
    "version",
    "structure",
    "device",
    "json",
    "field",
    "flags",
    "topic",
    "oversize",
    "implausible",
    "rate_limited",
    "database",
    "internal",
]


class PermitPulseError(Exception):
    """Root of every error PermitPulse raises on purpose."""


class DecodeError(PermitPulseError):
    """Raised when a payload is not a valid wire-format v1 frame.

    Attributes:
        reason: a short, human-readable statement of what is wrong.
        kind: the category of the fault (``"version"``, ``"structure"``, ``"device"``, ...), a
            bounded set fit for a metric label.
    """

    def __init__(self, reason: str, kind: RejectKind = "structure") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind: RejectKind = kind
