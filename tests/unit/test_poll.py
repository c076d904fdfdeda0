"""The polling loop every worker uses: woken work lingers so that one round takes what arrives meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import time

from shared import poll


async def test_wakes_during_the_linger_make_one_round_after_it() -> None:
    wake = asyncio.Event()
    rounds: list[float] = []

    async def work() -> bool:
        rounds.append(time.monotonic())
        return False

    loop = asyncio.create_task(
        poll.poll(work, name="test", idle_s=5.0, backoff=poll.Backoff(0.01, 0.1), wake=wake, linger_s=0.2)
    )
    try:
        await asyncio.sleep(0.02)
        assert len(rounds) == 1, "the first round runs at once"
        woken = time.monotonic()
        for _ in range(5):  # five commits in quick succession
            wake.set()
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.4)
        assert len(rounds) == 2, "one round for the five wakes"
        assert rounds[1] - woken >= 0.19, "it lingered before the round"
        wake.set()
        await asyncio.sleep(0.4)
        assert len(rounds) == 3
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
