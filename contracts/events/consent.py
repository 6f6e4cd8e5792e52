"""Consent-ledger's subject states that other services honour (R13, R14).

Published on ``consent-events``; every service learns restriction, suppression and objections
from these events, never by calling consent-ledger.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.events.common import Purpose

__all__ = [
    "ObjectionRecordedV1",
    "RestrictionLiftedV1",
    "RestrictionPlacedV1",
    "SuppressionAddedV1",
]

Origin = Literal["privacy_request", "operator", "unsubscribe"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RestrictionPlacedV1(_Strict):
    """From now on the subject's data is only stored: no scoring, CRM push or messaging."""

    origin: Origin
    request_id: Annotated[str, Field(max_length=64)] | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None


class RestrictionLiftedV1(_Strict):
    """Processing may resume; the subject is to be told (R14)."""

    origin: Origin
    request_id: Annotated[str, Field(max_length=64)] | None = None
    reason: Annotated[str, Field(max_length=500)] | None = None


class ObjectionRecordedV1(_Strict):
    """The subject objected to processing for these purposes (e.g. ``profiling``)."""

    purposes: Annotated[list[Purpose], Field(min_length=1, max_length=32)]
    origin: Origin
    request_id: Annotated[str, Field(max_length=64)] | None = None


class SuppressionAddedV1(_Strict):
    """The subject is on the tenant's suppression list: third-party data about them is refused
    and they are not re-ingested silently (R13)."""

    origin: Origin
    reason: Literal["objection", "opt_out", "operator"]
    request_id: Annotated[str, Field(max_length=64)] | None = None
