"""retention-scheduler's events on ``retention-events`` (R15-R18).

Tenant-wide events (policies, tenant holds) use the subject id ``_tenant``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "TENANT_SUBJECT",
    "DataCategory",
    "RetentionExpiredV1",
    "RetentionHoldPlacedV1",
    "RetentionHoldReleasedV1",
    "RetentionPolicySetV1",
]

TENANT_SUBJECT = "_tenant"

DataCategory = Literal[
    "lead_data",
    "b2b_profile",
    "marketing_prospect",
    "analytics",
    "privacy_request_records",
    "web_logs",
    "support_contact",
    "unanswered_invitation",
]
Anchor = Literal["last_activity", "capture", "last_update"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionPolicySetV1(_Strict):
    """A tenant's retention period for one data category (R16: never above the maximum)."""

    category: DataCategory
    period_days: Annotated[int, Field(ge=1, le=36500)]
    anchor: Anchor
    set_by: Annotated[str, Field(min_length=1, max_length=200)]


class RetentionHoldPlacedV1(_Strict):
    """A legal hold (R18): nothing in scope expires or is erased until it is released."""

    hold_id: Annotated[str, Field(min_length=1, max_length=64)]
    scope: Literal["subject", "tenant"]
    reason: Annotated[str, Field(min_length=1, max_length=1000)]
    placed_by: Annotated[str, Field(min_length=1, max_length=200)]


class RetentionHoldReleasedV1(_Strict):
    hold_id: Annotated[str, Field(min_length=1, max_length=64)]
    scope: Literal["subject", "tenant"]
    released_by: Annotated[str, Field(min_length=1, max_length=200)]
    reason: Annotated[str, Field(max_length=1000)] | None = None


class RetentionExpiredV1(_Strict):
    """A category of the subject's data reached the end of its retention period (R17)."""

    category: DataCategory
    anchor_at: AwareDatetime
    due_at: AwareDatetime
    period_days: int
    all_categories_expired: bool = Field(
        description="true when no category of the subject is still within its period: erase"
    )
