"""Time as an input (DESIGN principle 6): services take a clock, tests drive a fake one."""

from __future__ import annotations

import math
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

__all__ = [
    "Clock",
    "FakeClock",
    "OffsetFileClock",
    "SystemClock",
    "UntrustedClockFileError",
    "add_working_days",
]


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


class UntrustedClockFileError(ValueError):
    """The offset file of the test clock may have been written by someone else."""


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
    configuration sets neither (see ``services.common.runtime.clock_for``). Whoever can write
    the file can expire every lead at once, so the file must be owned by the service's user and
    not writable by group or others: checked at start (the service refuses to start) and on
    every re-read (a replaced file is a new file). ``/readyz`` and ``leadtrail_test_clock`` tell
    that the clock is in use.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: int | None = None
        self._offset = timedelta(0)
        self.check_file()

    def check_file(self) -> None:
        """:class:`UntrustedClockFileError` unless the file (when there is one) is the service
        user's own and writable by nobody else."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return
        self._check(info)

    def _check(self, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedClockFileError(f"test clock offset file {self.path}: not a regular file")
        if info.st_uid != os.geteuid():
            raise UntrustedClockFileError(
                f"test clock offset file {self.path}: owned by uid {info.st_uid}, not by the "
                f"service's user (uid {os.geteuid()})"
            )
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UntrustedClockFileError(
                f"test clock offset file {self.path}: writable by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):o}); chmod go-w it"
            )

    def offset(self) -> timedelta:
        """The offset now in force (re-reading the file if it changed)."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return self._offset
        if stamp != self._stamp:
            with self.path.open() as file:  # the checked file is the one read
                self._check(os.fstat(file.fileno()))
                text = file.read().strip()
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
