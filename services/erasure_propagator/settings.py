"""erasure-propagator's settings."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

__all__ = ["ErasureSettings"]

ALL_RECEIPTS = ["lead-ingest", "consent-ledger", "retention-scheduler", "crm-sync"]


class ErasureSettings(CommonSettings):
    erasure_receipts: list[str] = Field(
        default_factory=lambda: list(ALL_RECEIPTS),
        description="services whose erasure.receipt completes an erasure",
    )
    rectification_receipts: list[str] = Field(
        default_factory=lambda: ["lead-ingest", "crm-sync"],
        description="services whose rectification.receipt completes a rectification",
    )
    erasure_deadline_working_days: int = Field(
        default=10, ge=1, le=30, description="R25: two working weeks, for erasures not requested"
    )
    overdue_check_interval_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="longest the deadline check sleeps: it wakes at the earliest open "
        "erasure's deadline, and when this process requests one with an earlier deadline",
    )
