"""The store-and-forward outbox: order, replay flag, re-queue and capacity."""

from __future__ import annotations

import numpy as np

from firmware_sim.store_forward import StoreAndForward
from ingest.wire import FLAG_REPLAY, FLAG_SOS, RECORD_DTYPE


def _rec(seqs: list[int], flags: int = 0) -> np.ndarray:
    rec = np.zeros(len(seqs), dtype=RECORD_DTYPE)
    rec["seq"] = seqs
    rec["flags"] = flags
    return rec


def test_take_old_samples_are_flagged_replayed_current_ones_not() -> None:
    """Samples measured before the sending tick carry FLAG_REPLAY; their own flags stay."""
    saf = StoreAndForward(100)
    saf.push(_rec([1, 2], FLAG_SOS), tick=1)
    saf.push(_rec([3]), tick=2)
    out = saf.take(now_tick=2)
    assert out["seq"].tolist() == [1, 2, 3]
    assert out["flags"].tolist() == [FLAG_SOS | FLAG_REPLAY] * 2 + [0]
    assert len(saf) == 0


def test_requeue_goes_in_front_of_newer_samples() -> None:
    """Samples that failed to send are sent again before anything measured later."""
    saf = StoreAndForward(100)
    saf.push(_rec([5]), tick=5)
    saf.requeue(_rec([3, 4]), tick=4)
    assert saf.take(now_tick=6)["seq"].tolist() == [3, 4, 5]


def test_capacity_drops_the_oldest_and_counts_them() -> None:
    """A full buffer drops its oldest samples (as flash storage would) and counts them."""
    saf = StoreAndForward(4)
    for k in range(1, 7):
        saf.push(_rec([k]), tick=k)
    assert len(saf) == 4
    assert saf.dropped == 2
    assert saf.take(now_tick=7)["seq"].tolist() == [3, 4, 5, 6]


def test_capacity_trims_inside_a_chunk() -> None:
    """A chunk larger than the room left is cut, keeping its newest samples."""
    saf = StoreAndForward(3)
    saf.push(_rec([1, 2, 3, 4, 5]), tick=1)
    assert saf.take(now_tick=1)["seq"].tolist() == [3, 4, 5]
    assert saf.dropped == 2
