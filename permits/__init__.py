"""The permit domain (GB 30871-2022): templates, computed levels, approval routes,
certificates, gas tests, check-ins, evidence, the lifecycle and its timers, SIMOPS conflicts,
the hash-chained trail and KPIs — enforced, not just recorded.

Other packages use `PermitService` (the use cases; an async context manager that also runs
the expiry scheduler), the records in `permits.models` and the errors in `permits.errors`.
The HTTP routes are in `permits.router`.
"""

from permits.errors import (
    ConflictDetected,
    InvalidTransition,
    NotAuthorized,
    PermitError,
    PermitNotFound,
    RuleViolation,
    SeparationOfDuties,
    UnknownActor,
)
from permits.models import Actor, Permit, PermitState, PermitType
from permits.service import PermitService

__all__ = [
    "Actor",
    "ConflictDetected",
    "InvalidTransition",
    "NotAuthorized",
    "Permit",
    "PermitError",
    "PermitNotFound",
    "PermitService",
    "PermitState",
    "PermitType",
    "RuleViolation",
    "SeparationOfDuties",
    "UnknownActor",
]
