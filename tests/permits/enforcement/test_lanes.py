"""Lanes: decisions in order per permit, permits in parallel, a failure contained."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from permits.enforcement.lanes import Lanes


async def test_lanes_one_key_runs_jobs_in_submission_order() -> None:
    """Jobs of one lane run one after another, in the order submitted."""
    seen: list[int] = []

    def job(k: int) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await asyncio.sleep(0.01 * (3 - k))  # later jobs are quicker: order must hold
            seen.append(k)

        return run

    async with Lanes() as lanes:
        for k in range(3):
            lanes.submit("permit-a", job(k))
        await lanes.wait_idle()
    assert seen == [0, 1, 2]


async def test_lanes_slow_lane_does_not_delay_another_lane() -> None:
    """A lane blocked on one permit's work leaves another permit's job free to run."""
    release = asyncio.Event()
    done: list[str] = []

    async def slow() -> None:
        await release.wait()
        done.append("slow")

    async def quick() -> None:
        done.append("quick")

    async with Lanes() as lanes:
        lanes.submit("permit-a", slow)
        lanes.submit("permit-b", quick)
        await asyncio.sleep(0.05)
        assert done == ["quick"]
        assert lanes.busy == 1
        release.set()
        await lanes.wait_idle()
    assert done == ["quick", "slow"]


async def test_lanes_failed_job_does_not_stop_the_lane() -> None:
    """An exception in one job is logged; the lane's next job still runs."""
    done: list[str] = []

    async def boom() -> None:
        raise ValueError("no")

    async def after() -> None:
        done.append("after")

    async with Lanes() as lanes:
        lanes.submit("p", boom)
        lanes.submit("p", after)
        await lanes.wait_idle()
    assert done == ["after"]


async def test_lanes_closed_refuse_new_jobs() -> None:
    """Submitting after the lanes closed is an error, not a silently lost decision."""
    lanes = Lanes()
    async with lanes:
        pass

    async def job() -> None: ...

    with pytest.raises(RuntimeError, match="closed"):
        lanes.submit("p", job)


async def test_lanes_cut_off_on_exit_are_counted() -> None:
    """Work still running when the drain time is up is cancelled and counted as abandoned
    (the service then keeps its older detector snapshot); a clean exit abandons none."""
    async with Lanes(drain_s=0.05) as stuck:
        stuck.submit("permit-a", lambda: asyncio.sleep(10))
    assert stuck.abandoned == 1
    async with Lanes(drain_s=0.05) as clean:
        clean.submit("permit-a", lambda: asyncio.sleep(0))
    assert clean.abandoned == 0
