"""crm-sync's settings."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

__all__ = ["CrmSettings"]


class CrmSettings(CommonSettings):
    dispatch_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="longest the outbox dispatcher sleeps: work this process queues wakes it at "
        "once and a retry wakes it when due, so this only bounds how late it sees entries "
        "queued by another replica",
    )
    max_attempts: int = Field(
        default=12, ge=1, le=1000, description="transient failures before a push is dead-lettered"
    )
    backoff_base_s: float = Field(default=0.5, gt=0, le=60)
    backoff_max_s: float = Field(default=300.0, gt=0, le=86400)
    breaker_threshold: int = Field(
        default=5, ge=1, le=1000, description="consecutive failures that open a circuit"
    )
    breaker_open_s: float = Field(default=30.0, gt=0, le=3600)
    recipients_check_interval_s: float = Field(default=30.0, gt=0, le=86400)
