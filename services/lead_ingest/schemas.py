"""Request and response bodies of the lead-ingest HTTP API (documented in its OpenAPI file).

Request models reject unknown fields (R2: data minimisation, never silently kept). A rule a
model enforces in code (one of two fields, details that depend on the type) is also stated in
its JSON Schema (``json_schema_extra``), so that the OpenAPI document names every request the
server refuses as invalid; what a schema cannot state (an e-mail or phone that does not parse,
a wrong token, a tenant's purposes, the time) is refused with its own problem type.
"""

from __future__ import annotations

from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.events.common import Channel, Purpose, ShortText
from contracts.events.lead import (
    AnswerValue,
    ConsentClaims,
    CriterionRule,
    LawfulCollectionAttestation,
    LeadSource,
    ThirdPartySource,
    WebFormSource,
)
from contracts.events.privacy import PrivacyRequestType
from services.common.clear_fields import (
    PROVIDER_TEXT,
    TEXT_WITHOUT_AT,
    ClearUrl,
    CollectionPoint,
    NoticeVersion,
    ProviderName,
)

__all__ = [
    "Accepted",
    "AggregateRow",
    "ContactIn",
    "ExportLink",
    "InteractionIn",
    "LeadIn",
    "LeadView",
    "PrivacyRequestAccepted",
    "PrivacyRequestIn",
    "PrivacyRequestView",
    "ReceiptView",
    "ScoreReviewIn",
    "VerifyIn",
]

Region = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
SAFE_INTEGER = 2**53 - 1
"""The largest integer every JSON reader keeps exactly (a double, JavaScript's numbers); the
OpenAPI document states it exactly too, where 2**63 - 1 would be rounded up to 2**63."""
AnswerValueIn = (
    str
    | Annotated[int, Field(ge=-SAFE_INTEGER, le=SAFE_INTEGER)]
    | Annotated[float, Field(allow_inf_nan=False, ge=-SAFE_INTEGER, le=SAFE_INTEGER)]
    | bool
)
"""An answer as the API takes it: text, a boolean, or a number within +/-(2**53 - 1)
(integers beyond 64 bits are refused as JSON already, see services.common.json_body)."""
Name = Annotated[str, Field(min_length=1, max_length=200)]
AnswerKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _one_of_present(*fields: str) -> dict[str, Any]:
    """JSON Schema for "at least one of these fields, as a non-empty string"."""
    return {
        "anyOf": [
            {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
            for name in fields
        ]
    }


class WebFormSourceIn(WebFormSource):
    """As in ``lead.captured``, but ``kind`` must be sent: it picks the kind of source."""

    kind: Literal["web_form"]
    url: ClearUrl

    def as_event(self) -> LeadSource:
        return WebFormSource.model_validate(self.model_dump())


class AttestationIn(LawfulCollectionAttestation):
    """As in ``lead.captured``; the schema says the texts are not blank (they are stripped)."""

    statement: Annotated[
        ShortText,
        Field(
            pattern=TEXT_WITHOUT_AT,
            description="the provider's statement of lawful collection, about its process, not "
            "the person (no @): stored in clear",
        ),
    ]
    reference: (
        Annotated[
            ShortText,
            Field(
                pattern=PROVIDER_TEXT,
                description="the provider's contract or batch reference, never a person: stored "
                "in clear; letters, digits, spaces and . , & ' ( ) _ / + # -",
            ),
        ]
        | None
    ) = None


class ThirdPartySourceIn(ThirdPartySource):
    """As in ``lead.captured``, but ``kind`` must be sent: it picks the kind of source."""

    kind: Literal["third_party"]
    provider: ProviderName
    attestation: AttestationIn

    def as_event(self) -> LeadSource:
        return ThirdPartySource.model_validate(self.model_dump())


LeadSourceIn = Annotated[WebFormSourceIn | ThirdPartySourceIn, Field(discriminator="kind")]


class ContactIn(_In):
    model_config = ConfigDict(json_schema_extra=_one_of_present("email", "phone"))

    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    phone_region: Region | None = Field(
        default=None, description="region for national phone numbers; else the tenant's default"
    )
    first_name: Name | None = None
    last_name: Name | None = None
    company: Name | None = None
    job_title: Name | None = None
    message: Annotated[str, Field(max_length=5000)] | None = None

    @model_validator(mode="after")
    def _reachable(self) -> ContactIn:
        if not (self.email or self.phone):
            raise ValueError("a lead needs an email or a phone number")
        return self


class RequestContext(_In):
    ip: IPv4Address | IPv6Address | None = Field(
        default=None, description="the submitter's IP; stored shortened (R33)"
    )
    user_agent: Annotated[str, Field(max_length=500)] | None = None


class ConsentClaimsIn(ConsentClaims):
    """As in ``lead.captured``; the fields kept in clear are identifiers (no personal data)."""

    notice_version: NoticeVersion
    collection_point: CollectionPoint | None = None


class LeadIn(_In):
    source: LeadSourceIn
    contact: ContactIn
    consent: ConsentClaimsIn | None = None
    context: RequestContext | None = None


class Accepted(BaseModel):
    lead_id: str
    subject_id: str
    status: Literal["accepted"] = "accepted"


class InteractionIn(_In):
    channel: Channel
    answers: Annotated[
        dict[AnswerKey, AnswerValueIn],
        Field(
            min_length=1,
            max_length=100,
            json_schema_extra={"additionalProperties": False},  # keys match the pattern
        ),
    ]
    summary: Annotated[str, Field(max_length=5000)] | None = None


class InteractionAccepted(BaseModel):
    lead_id: str
    interaction_id: str
    status: Literal["accepted"] = "accepted"


class ScoreReviewIn(_In):
    score: Annotated[int, Field(ge=-100_000, le=100_000)]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    reviewer: Name


class ScoreReviewAccepted(BaseModel):
    lead_id: str
    review_id: str
    status: Literal["accepted"] = "accepted"


class Explanation(BaseModel):
    criterion_id: str
    answer: str
    input: AnswerValue | None = Field(description="null once the subject was erased")
    points: int
    rule: CriterionRule | None = Field(
        default=None,
        description="the condition the criterion tested when the lead was scored; null for "
        "scores recorded before lead.scored v2",
    )


class ScoreView(BaseModel):
    value: int
    threshold: int | None
    qualified: bool
    rules_version: int | None
    source: Literal["rules", "review"]
    explanation: list[Explanation]
    review: dict[str, Any] | None = None


class InteractionView(BaseModel):
    interaction_id: str
    channel: str
    at: datetime
    answered: list[str]
    answers: dict[str, AnswerValue] | None
    summary: str | None = None


class LeadView(BaseModel):
    lead_id: str
    subject_id: str
    state: Literal["captured", "scored", "qualified", "erased"]
    captured_at: datetime
    updated_at: datetime
    source: dict[str, Any]
    consent: dict[str, Any] | None
    contact: dict[str, Any] | None = Field(description="null once the subject was erased")
    interactions: list[InteractionView]
    score: ScoreView | None
    qualified_at: datetime | None
    processing: dict[str, Any]


class SubjectRef(_In):
    model_config = ConfigDict(json_schema_extra=_one_of_present("email", "phone", "lead_id"))

    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    phone_region: Region | None = None
    lead_id: Annotated[str, Field(max_length=64)] | None = None

    @model_validator(mode="after")
    def _something(self) -> SubjectRef:
        if not (self.email or self.phone or self.lead_id):
            raise ValueError("identify the subject by email, phone or lead_id")
        return self


class Attestation(_In):
    method: Literal["tenant_attestation"]
    attested_by: Name = Field(description="the tenant's operator who verified the requester")


class TokenVerification(_In):
    method: Literal["token"]


_NO_PURPOSES: dict[str, Any] = {"purposes": {"maxItems": 0}}
_NO_CORRECTIONS: dict[str, Any] = {"corrections": {"maxProperties": 0}}


class PrivacyRequestIn(_In):
    model_config = ConfigDict(
        json_schema_extra={
            # the details each type takes (what _details_fit_the_type checks)
            "anyOf": [
                {
                    "required": ["purposes"],
                    "properties": {
                        "type": {"const": "objection"},
                        "purposes": {"minItems": 1},
                        **_NO_CORRECTIONS,
                    },
                },
                {
                    "required": ["corrections"],
                    "properties": {
                        "type": {"const": "rectification"},
                        "corrections": {"minProperties": 1},
                        **_NO_PURPOSES,
                    },
                },
                {
                    "properties": {
                        "type": {"enum": ["access", "portability", "erasure", "restriction"]},
                        **_NO_PURPOSES,
                        **_NO_CORRECTIONS,
                    }
                },
            ]
        }
    )

    type: PrivacyRequestType
    subject: SubjectRef
    verification: Annotated[Attestation | TokenVerification, Field(discriminator="method")]
    relayed_by_tenant: bool = True
    purposes: Annotated[list[Purpose], Field(max_length=32)] = Field(
        default_factory=list, description="objection: the purposes objected to"
    )
    corrections: dict[
        Literal["email", "phone", "first_name", "last_name", "company", "job_title"],
        Annotated[str, Field(min_length=1, max_length=320)],
    ] = Field(default_factory=dict, description="rectification: the corrected values")
    note: Annotated[str, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _details_fit_the_type(self) -> PrivacyRequestIn:
        if self.type == "objection" and not self.purposes:
            raise ValueError("an objection names the purposes objected to")
        if self.type == "rectification" and not self.corrections:
            raise ValueError("a rectification carries the corrected values")
        if self.type not in ("objection",) and self.purposes:
            raise ValueError("purposes apply to objections only")
        if self.type != "rectification" and self.corrections:
            raise ValueError("corrections apply to rectifications only")
        return self


class PrivacyRequestAccepted(BaseModel):
    request_id: str
    status: Literal["received", "verified"]
    deadline: datetime
    verification_token: str | None = Field(
        default=None,
        description="token flow only: hand it to the requester through a channel they proved "
        "they control; shown once",
    )


class VerifyIn(_In):
    token: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9_-]{32}$",
            description="the verification_token the request answered with (32 characters)",
        ),
    ]


class ExportLink(BaseModel):
    """Where the answer to an access/portability request can be downloaded (R22, R23)."""

    url: str = Field(description="signed link to the package; works without an API key")
    format: Literal["json", "csv"]
    expires_at: datetime
    csv_url: str = Field(description="the same package as CSV (section,record,field,value)")


class ReceiptView(BaseModel):
    service: str = Field(description="the service (crm-sync: for every CRM) that confirmed")
    actions: list[str] = Field(description="what it did, e.g. which CRM deleted which record")
    at: datetime


class PrivacyRequestView(BaseModel):
    request_id: str
    type: PrivacyRequestType
    status: Literal["received", "verified", "completed", "overdue"] = Field(
        description="completed: carried out (erasure, rectification: every expected receipt "
        "in; restriction, objection: recorded; access, portability: the package ready); "
        "overdue: an erasure past its deadline with receipts missing"
    )
    subject_known: bool
    received_at: datetime
    verified_at: datetime | None
    deadline: datetime
    completed_at: datetime | None = None
    receipts: list[ReceiptView] = Field(
        default_factory=list,
        description="erasure and rectification: each service's confirmation, crm-sync's "
        "naming every CRM that deleted or updated its record",
    )
    missing_receipts: list[str] = Field(
        default_factory=list, description="overdue: the services that have not confirmed"
    )
    export: ExportLink | None = Field(
        default=None, description="access/portability: the package, once every service answered"
    )


class AggregateRow(BaseModel):
    month: str
    source: str
    score_band: str
    leads: int
