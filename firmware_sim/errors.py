"""Errors of the simulator package."""

from __future__ import annotations

from ingest.errors import PermitPulseError


class SimulatorError(PermitPulseError):
    """Raised when the simulator cannot do what it was asked (root of this package's errors)."""


class ScenarioError(SimulatorError):
    """Raised when a scenario file cannot be read or does not describe a valid scenario.

    Attributes:
        source: the file (or ``"<inline>"``) the scenario came from.
        problems: every problem found, as ``(field, reason)``; ``field`` is a dotted path
            such as ``incidents.2.worker``.
        field: the first problem's field.
        reason: the first problem's reason.
    """

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        assert problems, "a ScenarioError names at least one problem"
        listed = "; ".join(f"{f}: {r}" for f, r in problems)
        super().__init__(f"invalid scenario {source}: {listed}")
        self.source = source
        self.problems = problems
        self.field, self.reason = problems[0]


class LinkLostError(SimulatorError):
    """Raised when a simulated device's MQTT connection is lost or refused.

    Attributes:
        client_id: the MQTT client id of the connection.
        reason: what happened.
    """

    def __init__(self, client_id: str, reason: str) -> None:
        super().__init__(f"MQTT link {client_id!r} lost: {reason}")
        self.client_id = client_id
        self.reason = reason
