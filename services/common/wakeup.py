"""Background loops that run when work is due, not on a timer (issue 14 point 5).

A service's background work (crm-sync's outbox, retention's expiry tick, erasure-propagator's
deadline check) used to poll the store every fraction of a second or every 30 s, idle or not.
Now each loop runs its work, which says when it next has something due (it read the earliest
due time from the store once), and then sleeps until that moment. The event handlers that create
work tell the loop in-process (:meth:`Wakeup.notify`, with when the work is due: now, a due
date, a deadline), so new work is picked up at once and nothing is read in between. Every sleep
is capped by ``max_sleep_s``: work that another replica of the service created, which no handler
of this process heard of, is picked up within that time.

Time is the service's :class:`~services.common.clock.Clock` (so a test clock moves due times)
and waiting is an injectable ``waiter``, so a test can run a loop through hours of fake time
and count what it sent to the store.

A stopping service calls :meth:`Wakeup.stop`: the round in progress finishes (its store writes
and publishes are not cut off halfway), a sleep ends at once, and the loop returns. Stopping
does not rely on cancelling the task: on Python 3.11 a cancellation that races a completing
``asyncio.wait_for`` (inside the drivers too) can be lost, and a loop that lost one slept on
until its cap, holding up the whole shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from services.common.clock import Clock
from services.common.logging import get_logger

__all__ = ["Waiter", "Wakeup", "run_when_due", "wait_for_event"]

log = get_logger(__name__)

Waiter = Callable[[asyncio.Event, float], Awaitable[None]]
"""Wait until the event is set or the given seconds have passed, whichever is first."""

RETRY_AFTER_FAILURE_S = 5.0
"""How soon a loop whose work raised (say, the store did not answer) tries again, at most."""


async def wait_for_event(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


class Wakeup:
    """When a background loop runs next: at the earliest of the time its work said, the times
    handlers announced, and ``max_sleep_s`` after it went to sleep."""

    def __init__(self, clock: Clock, max_sleep_s: float, *, waiter: Waiter = wait_for_event):
        if max_sleep_s <= 0:
            raise ValueError("max_sleep_s must be > 0")
        self.clock = clock
        self.max_sleep_s = max_sleep_s
        self._waiter = waiter
        self._changed = asyncio.Event()
        self._announced: datetime | None = None
        self._stopped = False

    def stop(self) -> None:
        """The service is stopping: a sleep ends now and :func:`run_when_due` returns after
        the round in progress."""
        self._stopped = True
        self._changed.set()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def notify(self, at: datetime | None = None) -> None:
        """Work is due at ``at`` (None: now). Cheap and synchronous: handlers call it after
        writing the work to the store. A time later than one already announced changes
        nothing; an earlier one wakes the loop (to run, or to sleep less)."""
        moment = self.clock.now() if at is None else at
        if self._announced is None or moment < self._announced:
            self._announced = moment
            self._changed.set()

    @property
    def due_now(self) -> bool:
        """Work due by now was announced since the round began: the loop runs again at once,
        so the round need not read when its next work is due."""
        return self._announced is not None and self._announced <= self.clock.now()

    def begin(self) -> None:
        """The loop is about to run its work: what was announced until now is being handled
        (a notify from here on wakes the next sleep)."""
        self._announced = None

    async def sleep(self, next_due: datetime | None) -> None:
        """Sleep until ``next_due`` (None: nothing due), an announced time, the cap or
        :meth:`stop`."""
        cap = self.clock.now() + timedelta(seconds=self.max_sleep_s)
        while not self._stopped:
            now = self.clock.now()
            target = min(t for t in (next_due, self._announced, cap) if t is not None)
            if target <= now:
                return
            self._changed.clear()
            await self._waiter(self._changed, (target - now).total_seconds())


async def run_when_due(
    what: str, work: Callable[[], Awaitable[datetime | None]], wakeup: Wakeup
) -> None:
    """Run ``work`` whenever it is due, until ``wakeup`` is stopped (or the task cancelled).

    ``work`` does what is due and returns when it next has something due: a time (now or
    earlier: run again at once, say after a full batch) or None (nothing known). A failure is
    logged and retried within :data:`RETRY_AFTER_FAILURE_S` (or the cap, if shorter)."""
    while not wakeup.stopped:
        wakeup.begin()
        try:
            next_due = await work()
        except Exception:  # the work stays in the store; try again shortly
            log.exception(f"{what} failed")
            retry = min(RETRY_AFTER_FAILURE_S, wakeup.max_sleep_s)
            next_due = wakeup.clock.now() + timedelta(seconds=retry)
        await wakeup.sleep(next_due)
