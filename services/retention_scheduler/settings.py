"""retention-scheduler's settings."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

__all__ = ["RetentionSettings"]


class RetentionSettings(CommonSettings):
    tick_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="longest the expiry loop sleeps: it wakes when the earliest schedule is "
        "due and when an event schedules an earlier one, so this only bounds how late it sees "
        "schedules another replica wrote and schedules a released hold lets expire",
    )
    tick_batch_size: int = Field(default=500, ge=1, le=100_000)
