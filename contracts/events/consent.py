"""Consent-ledger's subject states that other services honour (R13, R14).

Published on ``consent-events``; every service learns restriction, suppression and objections
from these events, never by calling consent-ledger.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.events.common import Channel, Purpose

__all__ = [
    "ConsentGrantedV1",
    "ConsentProofV1",
    "ConsentWithdrawnV1",
    "NoBasisRemainingV1",
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


class ConsentGrantedV1(_Strict):
    """The subject consented to one purpose, with the proof of R10: when, through which
    channel, which notice (version and hash of its text), where it was collected."""

    purpose: Purpose
    channel: Channel
    notice_version: Annotated[str, Field(min_length=1, max_length=100)]
    notice_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    given_at: AwareDatetime
    collection_point: Annotated[str, Field(max_length=2000)] | None = None
    origin: Literal["lead_capture", "api"]
    lead_id: Annotated[str, Field(max_length=64)] | None = None


class ConsentProofV1(_Strict):
    """Personal parts of the proof: the shortened IP address and the user agent."""

    ip_prefix: Annotated[str, Field(max_length=64)] | None = None
    user_agent: Annotated[str, Field(max_length=500)] | None = None


class ConsentWithdrawnV1(_Strict):
    """Consent to one purpose was withdrawn; effective for processing from this event on,
    not retroactive (R11)."""

    purpose: Purpose
    origin: Literal["unsubscribe", "api", "privacy_request"]
    request_id: Annotated[str, Field(max_length=64)] | None = None


class NoBasisRemainingV1(_Strict):
    """After a withdrawal no purpose of the subject has a lawful basis left, so their data
    must be erased (R12); erasure-propagator acts on it."""

    withdrawn_purpose: Purpose
    cause_event_id: Annotated[str, Field(max_length=64)]
