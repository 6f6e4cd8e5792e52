"""Data-subject requests (R21, R26), produced by lead-ingest on ``privacy-events``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

from contracts.events.common import Purpose

__all__ = [
    "PrivacyRequestContactV1",
    "PrivacyRequestReceivedV1",
    "PrivacyRequestType",
    "PrivacyRequestVerifiedV1",
    "VerificationMethod",
]

PrivacyRequestType = Literal[
    "access", "portability", "rectification", "erasure", "restriction", "objection"
]
VerificationMethod = Literal["tenant_attestation", "token"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrivacyRequestReceivedV1(_Strict):
    """A request arrived. Nothing is executed before ``privacy.request.verified`` (R21)."""

    request_id: Annotated[str, Field(min_length=1, max_length=64)]
    request_type: PrivacyRequestType
    relayed_by_tenant: bool = Field(description="relayed by the tenant, or sent by the person")
    subject_known: bool = Field(description="whether the identifiers matched a data subject")
    identified_by: list[Literal["email", "phone", "subject_id", "lead_id"]]
    deadline: AwareDatetime = Field(description="when the answer is due (R22, R25)")
    verification: VerificationMethod
    purposes: Annotated[list[Purpose], Field(max_length=32)] = Field(
        default_factory=list, description="objection: the purposes objected to"
    )
    rectify_fields: Annotated[list[str], Field(max_length=20)] = Field(
        default_factory=list, description="rectification: which fields change (values in pii)"
    )


class PrivacyRequestContactV1(_Strict):
    """Personal data of a request: how the person identified themselves, and corrections."""

    email: EmailStr | None = None
    phone: str | None = None
    corrections: dict[str, str] = Field(default_factory=dict)
    note: Annotated[str, Field(max_length=2000)] | None = None


class PrivacyRequestVerifiedV1(_Strict):
    """The requester's identity was verified; later services may now execute the request."""

    request_id: Annotated[str, Field(min_length=1, max_length=64)]
    request_type: PrivacyRequestType
    method: VerificationMethod
    attested_by: Annotated[str, Field(max_length=200)] | None = Field(
        default=None, description="the tenant operator who vouched for the requester"
    )
