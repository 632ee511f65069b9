"""The rule language: a versioned YAML file of conditions → actions, validated on load.

A rules file is data, not code. An invalid file refuses to load with the line and the
reason (`RulesFileError`), so a typo can never silently disable a safety rule.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ingest.errors import PermitPulseError

DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")
SUPPORTED_VERSIONS = (1,)
#: Alarm kinds a rule may name (the detectors' vocabulary, SPEC §4); a typo is refused.
ALARM_KINDS = frozenset(
    {
        "sensor_fault", "hr_sustained_high", "hr_drift", "hr_recovery_poor", "core_temp_high",
        "strain_high", "skin_temp_high", "spo2_low", "fall", "sos", "no_motion",
        "device_offline", "geofence_exit", "watcher_away", "gas_alarm",
    }
)  # fmt: skip


class RulesFileError(PermitPulseError):
    """Raised when a rules file cannot be loaded.

    Attributes:
        path: the file.
        line: 1-based line of the offending element, when known.
        reason: what is wrong.
    """

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class Trigger(StrEnum):
    """What a rule reacts to."""

    ALARM = "alarm"  # a detector alarm changed (raised, escalated, cleared)
    PERMIT_EXPIRED = "permit_expired"  # a permit passed its validity
    PERMIT_DUE = "permit_due"  # a permit is about to expire


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Conditions(_Strict):
    """Every given condition must hold (lists: any of); absent conditions always hold."""

    kind: tuple[str, ...] | None = Field(default=None, description="Alarm kinds.")
    severity: tuple[Literal["notice", "warning", "critical"], ...] | None = None
    state: tuple[Literal["raised", "escalated", "cleared"], ...] | None = None
    value_gte: float | None = Field(default=None, description="Alarm value at least this.")
    value_lt: float | None = Field(default=None, description="Alarm value below this.")
    permit_type: tuple[Literal["DH", "SX", "MB", "GC", "DZ", "YD", "DT", "DL"], ...] | None = None
    permit_type_not: tuple[Literal["DH", "SX", "MB", "GC", "DZ", "YD", "DT", "DL"], ...] | None = (
        Field(default=None, description="The device is on no live permit of these types.")
    )
    permit_level: tuple[str, ...] | None = None
    permit_state: tuple[str, ...] | None = None
    on_permit: bool | None = Field(
        default=None, description="True: the device is on an active permit; False: it is not."
    )
    worker_fit: bool | None = Field(default=None, description="The worker's fitness flag.")
    role: tuple[Literal["worker", "watcher"], ...] | None = Field(
        default=None, description="The device's role on the permit."
    )

    @model_validator(mode="after")
    def _known_kinds(self) -> Conditions:
        unknown = set(self.kind or ()) - ALARM_KINDS
        if unknown:
            raise ValueError(
                f"unknown alarm kind(s) {sorted(unknown)}; known: {sorted(ALARM_KINDS)}"
            )
        return self


class Downgrade(_Strict):
    """Send the worker to rest; unfit until HR and core temperature stay under limits."""

    action: Literal["downgrade"] = "downgrade"
    return_after_min: float = Field(default=15, gt=0, description="Minutes under the limits.")


class Evacuate(_Strict):
    """Command every device on the permit (and optionally within a radius) out of the area."""

    action: Literal["evacuate"] = "evacuate"
    radius_m: float = Field(default=0, ge=0, description="Also devices this close to the point.")


class Suspend(_Strict):
    """Take the permit back: work stops until the GB 30871 re-checks are done."""

    action: Literal["suspend"] = "suspend"
    reason: str = Field(min_length=1)


class Terminate(_Strict):
    """End the permit for good; its devices are told to stop work."""

    action: Literal["terminate"] = "terminate"
    reason: str = Field(min_length=1)


class Notify(_Strict):
    """Push to people, escalating along ``escalate`` when nobody acknowledges in time."""

    action: Literal["notify"] = "notify"
    roles: tuple[Literal["watcher", "supervisor", "safety", "control_room"], ...] = Field(
        min_length=1
    )
    deadline_s: float = Field(default=60, gt=0)
    escalate: tuple[Literal["watcher", "supervisor", "safety", "control_room"], ...] = (
        "watcher",
        "supervisor",
        "safety",
        "control_room",
    )
    message: str = ""


class Command(_Strict):
    """Send a device command (e.g. a message, or stop work)."""

    action: Literal["command"] = "command"
    command: Literal["rest", "evacuate", "stop_work", "message"]
    message: str = ""


Action = Annotated[
    Downgrade | Evacuate | Suspend | Terminate | Notify | Command, Field(discriminator="action")
]


class Rule(_Strict):
    """``when`` the trigger's facts match, ``then`` the actions, in order."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = Field(min_length=1, description="Why, with the source.")
    trigger: Trigger
    when: Conditions = Conditions()
    then: tuple[Action, ...] = Field(min_length=1)
    final: bool = Field(default=False, description="Stop evaluating later rules when it fires.")

    @model_validator(mode="before")
    @classmethod
    def _action_shorthand(cls, data: Any) -> Any:
        """Allow ``- suspend: {reason: …}`` for ``- {action: suspend, reason: …}``."""
        if isinstance(data, dict) and isinstance(data.get("then"), list):
            data = dict(data)
            data["then"] = [_expand(a) for a in data["then"]]
        return data


def _expand(item: Any) -> Any:
    if isinstance(item, dict) and len(item) == 1 and "action" not in item:
        ((name, params),) = item.items()
        return {"action": name, **(params or {})}
    if isinstance(item, str):
        return {"action": item}
    return item


class RuleSet(_Strict):
    """A versioned, ordered list of rules with unique ids."""

    version: int
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _checks(self) -> RuleSet:
        if self.version not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"rules version {self.version} is not supported ({SUPPORTED_VERSIONS})"
            )
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self


def load(path: Path = DEFAULT_RULES) -> RuleSet:
    """Load and validate a rules file."""
    return parse(path.read_text(encoding="utf-8"), source=str(path))


def parse(text: str, *, source: str = "<rules>") -> RuleSet:
    """Validate rules text; errors name the line of the offending element."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RulesFileError(source, mark.line + 1 if mark else None, f"not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RulesFileError(source, 1, "a rules file is a mapping with 'version' and 'rules'")
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err.get("loc", ()))
        where = ".".join(str(p) for p in loc)
        reason = f"{where}: {err.get('msg')}" if where else str(err.get("msg"))
        raise RulesFileError(source, _line_of(node, loc), reason) from None


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest YAML node on the path ``loc`` (pydantic error location)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == part]
            if not match:
                continue  # a union tag or a model-level error: stay at this node
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
                node = node.value[0][1]  # `- suspend: {...}` shorthand: into the parameters
        else:
            break
        line = node.start_mark.line + 1
    return line
