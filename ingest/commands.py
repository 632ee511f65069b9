"""Device command wire format v1: commands down on ``…/{device}/cmd``, acknowledgements up on
``…/{device}/ack`` (JSON; documented in ``docs/wire-format.md``).

A command: ``{"cmd_id", "action", "params", "issued_ms", "expires_ms"}``; an acknowledgement:
``{"cmd_id", "device_id", "status", "ts_ms", "detail"}`` with status ``delivered`` (the device
has it), then ``done`` (carried out) or ``failed`` (refused, reason in ``detail``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class CommandAction(StrEnum):
    """What a command asks the wearer to do."""

    REST = "rest"  # stop working and rest (downgrade); params: duration_s (optional)
    RESUME = "resume"  # back to the scheduled work
    EVACUATE = "evacuate"  # leave the work area now, to the muster point
    STOP_WORK = "stop_work"  # stop and leave the area calmly (permit ended or suspended)
    MESSAGE = "message"  # show a text; params: text


class AckStatus(StrEnum):
    DELIVERED = "delivered"
    DONE = "done"
    FAILED = "failed"


class Command(BaseModel):
    """A command to one device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cmd_id: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=32)
    params: dict[str, Any] = {}
    issued_ms: int = Field(ge=0)
    expires_ms: int | None = Field(default=None, ge=0)

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump(exclude_none=True))


class Ack(BaseModel):
    """A device's acknowledgement of a command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cmd_id: str = Field(min_length=1, max_length=64)
    device_id: str = Field(min_length=1, max_length=64)
    status: AckStatus
    ts_ms: int
    detail: str | None = Field(default=None, max_length=500)

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))


def _parse(model: type[BaseModel], payload: bytes) -> Any:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        return f"{where}: {first['msg']}"


def parse_command(payload: bytes) -> Command | str:
    """The command in ``payload``, or the reason it is not one."""
    result: Command | str = _parse(Command, payload)
    return result


def parse_ack(payload: bytes) -> Ack | str:
    """The acknowledgement in ``payload``, or the reason it is not one."""
    result: Ack | str = _parse(Ack, payload)
    return result
