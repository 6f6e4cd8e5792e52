"""Time as an input (DESIGN principle 6): services take a clock, tests drive a fake one."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

__all__ = ["Clock", "FakeClock", "OffsetFileClock", "SystemClock", "add_working_days"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to; for tests and deterministic replays."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time does not run backwards")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        if moment.astimezone(UTC) < self._now:
            raise ValueError("time does not run backwards")
        self._now = moment.astimezone(UTC)


class OffsetFileClock:
    """TEST ONLY: the system time plus an offset in seconds read from a file.

    End-to-end tests run every service as its own process, so they cannot hand a
    :class:`FakeClock` around; instead each process reads the same small file (one number of
    seconds, e.g. ``63072000`` for two years) and a test moves every process's time forward by
    rewriting it (atomically: write a temporary file, then rename). The file is re-read whenever
    its modification time changes; a missing file means no offset. Time never runs backwards: a
    smaller offset than one already seen is refused.

    Services build this clock only when ``LEADTRAIL_TEST_CLOCK_OFFSET_FILE`` *and*
    ``LEADTRAIL_ENABLE_TEST_CLOCK=true`` are set, and log a warning at startup; production
    configuration sets neither (see ``services.common.runtime.clock_for``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: int | None = None
        self._offset = timedelta(0)

    def offset(self) -> timedelta:
        """The offset now in force (re-reading the file if it changed)."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return self._offset
        if stamp != self._stamp:
            text = self.path.read_text().strip()
            seconds = float(text) if text else 0.0
            if not math.isfinite(seconds) or seconds < 0:
                raise ValueError(f"{self.path}: the clock offset must be >= 0 seconds: {text!r}")
            offset = timedelta(seconds=seconds)
            if offset < self._offset:
                raise ValueError(f"{self.path}: time does not run backwards ({text!r})")
            self._offset, self._stamp = offset, stamp
        return self._offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()


def add_working_days(start: datetime, days: int) -> datetime:
    """``days`` Monday-to-Friday days after ``start``, at the same time of day."""
    moment = start
    remaining = days
    while remaining > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            remaining -= 1
    return moment
