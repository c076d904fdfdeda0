"""The one way a service polls for due work: run it while it finds some, wait when idle, back off on failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def jittered_delay(retries: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with full jitter, capped: after n retries, uniform in [base, min(cap, base·2ⁿ)]."""
    ceiling = min(cap_s, base_s * 2.0 ** min(retries, 60))
    return random.uniform(base_s, max(base_s, ceiling))


@dataclass
class Backoff:
    """`jittered_delay` with its count of retries kept, for a loop that retries one thing."""

    base_s: float
    cap_s: float
    attempts: int = field(default=0, init=False)

    def next_delay(self) -> float:
        delay = jittered_delay(self.attempts, self.base_s, self.cap_s)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


async def poll(
    work: Callable[[], Awaitable[bool]],
    *,
    name: str,
    idle_s: float,
    backoff: Backoff,
    wake: asyncio.Event | None = None,
    linger_s: float = 0.0,
    on_error: Callable[[BaseException], None] = lambda _: None,
) -> None:
    """Run `work` forever. It returns True when it found work (so it runs again at once) and False
    when there was none (so the loop waits `idle_s`, or less when `wake` is set, and then `linger_s`
    more, for what else is on its way). An exception is logged, reported to `on_error`, and followed
    by a backoff wait; nothing escapes but cancellation."""
    while True:
        try:
            busy = await work()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the loop must outlive any single failure
            on_error(error)
            delay = backoff.next_delay()
            log.warning("%s failed (attempt %d); retrying in %.2fs", name, backoff.attempts, delay, exc_info=True)
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        if busy:
            continue
        if wake is None:
            await asyncio.sleep(idle_s)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=idle_s)
        if wake.is_set() and linger_s > 0:
            await asyncio.sleep(linger_s)
        wake.clear()


async def until_done(attempt: Callable[[], Awaitable[None]], *, name: str, backoff: Backoff) -> None:
    """Retry `attempt` with backoff until it succeeds once (e.g. connecting to a broker at start)."""
    while True:
        try:
            await attempt()
        except asyncio.CancelledError:
            raise
        except Exception:  # any failure is retried; the reason is logged
            delay = backoff.next_delay()
            log.warning("%s failed; retrying in %.1fs", name, delay, exc_info=True)
            await asyncio.sleep(delay)
        else:
            return
