"""Events of the lead lifecycle, produced by lead-ingest on the ``lead-events`` topic."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

from contracts.events.common import Channel, Identifier, LegalBasis, Purpose, ShortText

__all__ = [
    "ConsentClaims",
    "LawfulCollectionAttestation",
    "LeadCapturedV1",
    "LeadContactV1",
    "LeadSource",
    "ThirdPartySource",
    "WebFormSource",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebFormSource(_Strict):
    """Collected directly from the data subject through a form on the tenant's website."""

    kind: Literal["web_form"] = "web_form"
    url: Annotated[str, Field(pattern=r"^https?://", max_length=2000)]


class LawfulCollectionAttestation(_Strict):
    """The third-party provider's statement that it collected the data lawfully (R4)."""

    legal_basis: LegalBasis
    statement: ShortText
    attested_at: AwareDatetime
    reference: ShortText | None = None


class ThirdPartySource(_Strict):
    """Bought or received from a lead-generation provider or a B2B database (R4)."""

    kind: Literal["third_party"] = "third_party"
    provider: Annotated[str, Field(min_length=1, max_length=200)]
    attestation: LawfulCollectionAttestation


LeadSource = Annotated[WebFormSource | ThirdPartySource, Field(discriminator="kind")]


class ConsentClaims(_Strict):
    """What the subject agreed to when the lead was captured; consent-ledger turns these into
    ``consent.granted`` events with proof (R10)."""

    purposes: Annotated[list[Purpose], Field(min_length=1, max_length=32)]
    notice_version: Annotated[str, Field(min_length=1, max_length=100)]
    notice_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    given_at: AwareDatetime
    channel: Channel
    collection_point: Annotated[str, Field(max_length=2000)] | None = None


class LeadCapturedV1(_Strict):
    """A lead was accepted. Non-personal facts only; the person's details are in ``pii``."""

    lead_id: Annotated[str, Field(min_length=1, max_length=64)]
    source: LeadSource
    consent: ConsentClaims | None = None
    linked_by: Annotated[list[Identifier], Field(max_length=2)] = Field(
        default_factory=list,
        description="Identifiers whose blind index matched an existing subject (R5).",
    )
    fields_present: Annotated[list[str], Field(max_length=20)] = Field(
        default_factory=list, description="Names of the personal fields the lead carried."
    )


class LeadContactV1(_Strict):
    """Personal data of a captured lead (encrypted in the envelope's ``pii``)."""

    email: EmailStr | None = None
    phone: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None
    first_name: Annotated[str, Field(max_length=200)] | None = None
    last_name: Annotated[str, Field(max_length=200)] | None = None
    company: Annotated[str, Field(max_length=200)] | None = None
    job_title: Annotated[str, Field(max_length=200)] | None = None
    message: Annotated[str, Field(max_length=5000)] | None = None
    ip_prefix: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The submitter's IP address, shortened (R33)."
    )
    user_agent: Annotated[str, Field(max_length=500)] | None = None
