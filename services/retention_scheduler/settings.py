"""retention-scheduler's settings."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

__all__ = ["RetentionSettings"]


class RetentionSettings(CommonSettings):
    tick_interval_s: float = Field(
        default=30.0, gt=0, le=3600, description="how often due retention periods are expired"
    )
    tick_batch_size: int = Field(default=500, ge=1, le=100_000)
