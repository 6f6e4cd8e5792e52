"""Data-subject requests (R21, R26), produced by lead-ingest on ``privacy-events``."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, JsonValue

from contracts.events.common import OperatorHash, Purpose

__all__ = [
    "EXPORT_SECTIONS",
    "ExportPartContentV1",
    "ExportPartV1",
    "ExportSection",
    "PrivacyRequestAttestationV2",
    "PrivacyRequestCompletedV1",
    "PrivacyRequestContactV1",
    "PrivacyRequestReceivedV1",
    "PrivacyRequestType",
    "PrivacyRequestVerifiedV1",
    "PrivacyRequestVerifiedV2",
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


class PrivacyRequestVerifiedV2(_Strict):
    """The requester's identity was verified. Who vouched for the requester is personal data
    (a name or an e-mail): since v2 it travels encrypted in ``pii``
    (:class:`PrivacyRequestAttestationV2`, shredded by an erasure of the subject); in clear
    only a keyed hash of it remains, so who attested an erasure can still be checked."""

    request_id: Annotated[str, Field(min_length=1, max_length=64)]
    request_type: PrivacyRequestType
    method: VerificationMethod
    attested_by_hash: OperatorHash | None = Field(
        default=None,
        description="tenant_attestation: HMAC-SHA256 of the attester (trimmed, lower case) "
        "under lead-ingest's blind-index key; null for the token flow and for a v1 event",
    )
    legacy_attested_by: Annotated[str, Field(max_length=200)] | None = Field(
        default=None,
        description="only on a privacy.request.verified v1 event read as v2: the attester v1 "
        "recorded in clear (the log can't be rewritten); hidden from views once the subject "
        "is erased. A v2 producer never sets it",
    )


class PrivacyRequestAttestationV2(_Strict):
    """The personal part of a verification by tenant attestation."""

    attested_by: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="the tenant operator who vouched for the requester"
    )


ExportSection = Literal[
    "personal_data",
    "sources",
    "interactions",
    "scores",
    "privacy_requests",
    "purposes",
    "consents",
    "restrictions",
    "retention",
    "holds",
    "recipients",
    "erasures",
    "rectifications",
]
"""The sections of an access/portability package (R22, R23), in the order they are shown."""

EXPORT_SECTIONS: tuple[ExportSection, ...] = get_args(ExportSection)

Service = Annotated[str, Field(min_length=1, max_length=64)]


class ExportPartV1(_Strict):
    """One service's contribution to the answer of an access or portability request: which
    sections it filled and how many records each holds. The records are in ``pii``."""

    request_id: Annotated[str, Field(min_length=1, max_length=64)]
    service: Service
    records: dict[ExportSection, Annotated[int, Field(ge=0)]] = Field(
        description="records per section in this part (sections the service owns)"
    )


class ExportPartContentV1(_Strict):
    """The records of an export part, per section: personal data, so encrypted under the
    subject's key (an erasure shreds every part still on the log)."""

    sections: dict[ExportSection, list[dict[str, JsonValue]]]


class PrivacyRequestCompletedV1(_Strict):
    """The answer to a request is ready (R26: every response is recorded). For access and
    portability requests: the package assembled from every service's part, downloadable in
    ``formats`` through a signed, expiring link on ``GET /v1/privacy-requests/{id}``."""

    request_id: Annotated[str, Field(min_length=1, max_length=64)]
    request_type: PrivacyRequestType
    parts: list[Service] = Field(description="services whose parts the package holds")
    records: dict[ExportSection, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="records per section of the package"
    )
    package_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None, description="SHA-256 of the package's JSON rendering as delivered"
    )
    formats: list[Literal["json", "csv"]] = Field(default_factory=list)
