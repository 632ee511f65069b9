"""Return to work after a downgrade: the one rule, shared by the live service and the replay.

A downgraded worker is unfit until none of the heat and SpO2 alarm levels has been up on any
of the worker's devices for the decision's recovery time (`Downgrade.return_after_min`,
SPEC §5: "HR and CT back under limits for N minutes").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from detectors.models import AlarmKind

#: The alarm kinds whose level must stay at zero for a worker to recover.
HEAT_KINDS = frozenset({"hr_sustained_high", "core_temp_high", "strain_high", "spo2_low"})


class Levels(Protocol):
    """What recovery reads of the detectors (`detectors.DetectorPipeline`)."""

    _slot: dict[str, int]

    def levels(self, device_id: str) -> dict[AlarmKind, int]: ...


def hot(pipeline: Levels, devices: Iterable[str]) -> bool:
    """True while a heat or SpO2 level is up on any of the devices, or none of them is known
    to the detectors (no data: no evidence of recovery)."""
    known = [d for d in devices if d in pipeline._slot]
    if not known:
        return True
    return any(
        level > 0
        for d in known
        for kind, level in pipeline.levels(d).items()
        if kind.value in HEAT_KINDS
    )


class ReturnToWork:
    """Recovery clocks of unfit workers: started when the worker is first seen cool, reset
    whenever a level comes back up, due after the recovery time."""

    def __init__(self) -> None:
        self._since: dict[str, int] = {}

    def due(
        self, unfit: Mapping[str, float], is_hot: Callable[[str], bool], now_ms: int
    ) -> list[str]:
        """Workers (of ``unfit``: worker → recovery minutes) fit again at ``now_ms``, sorted."""
        if not unfit:
            self.clear()
            return []
        out: list[str] = []
        for worker_id in sorted(unfit):
            if is_hot(worker_id):
                self._since.pop(worker_id, None)
                continue
            since = self._since.setdefault(worker_id, now_ms)
            if now_ms - since >= unfit[worker_id] * 60_000:
                out.append(worker_id)
        return out

    def clear(self) -> None:
        """Nobody is unfit: no clocks."""
        self._since.clear()

    def forget(self, worker_id: str) -> None:
        """The worker is fit again (or downgraded anew): no clock."""
        self._since.pop(worker_id, None)
