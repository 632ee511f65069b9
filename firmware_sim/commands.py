"""Device commands and acknowledgements: the JSON on ``cmd`` and ``ack`` (``docs/simulator.md``).

A command: ``{"cmd_id", "action", "params", "issued_ms", "expires_ms"}``; an acknowledgement:
``{"cmd_id", "device_id", "status", "ts_ms", "detail"}`` with status ``delivered`` (the device
has it), then ``done`` (carried out) or ``failed`` (refused, with the reason in ``detail``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Action(StrEnum):
    """What a command asks the wearer to do."""

    REST = "rest"  # stop working and rest (downgrade); params: duration_s (optional)
    RESUME = "resume"  # back to the scheduled work (and the work spot)
    EVACUATE = "evacuate"  # leave the work area now, to the muster point
    STOP_WORK = "stop_work"  # stop and leave the area calmly (permit ended)
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

    cmd_id: str
    device_id: str
    status: AckStatus
    ts_ms: int
    detail: str | None = None

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))


def parse_command(payload: bytes) -> Command | str:
    """The command in ``payload``, or the reason it is not one."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    try:
        return Command.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        return f"{where}: {first['msg']}"
