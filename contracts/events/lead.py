"""Events of the lead lifecycle, produced by lead-ingest on the ``lead-events`` topic."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

from contracts.events.common import (
    Channel,
    Identifier,
    LegalBasis,
    OperatorHash,
    Purpose,
    ShortText,
)

__all__ = [
    "AnswerValue",
    "ConsentClaims",
    "CriterionOp",
    "CriterionRule",
    "InteractionAnswersV1",
    "LawfulCollectionAttestation",
    "LeadCapturedV1",
    "LeadContactV1",
    "LeadInteractionRecordedV1",
    "LeadQualifiedV1",
    "LeadScoreReviewedV1",
    "LeadScoreReviewedV2",
    "LeadScoredV1",
    "LeadScoredV2",
    "LeadSource",
    "ScoreInputsV1",
    "ScoreReviewReasonV1",
    "ScoreReviewV2",
    "ScoredCriterion",
    "ScoredCriterionV2",
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


AnswerValue = str | int | float | bool


class LeadInteractionRecordedV1(_Strict):
    """Answers gathered on a channel during qualification (R1, R6). The answers themselves are
    personal data and travel in ``pii``; here only which questions were answered."""

    lead_id: Annotated[str, Field(min_length=1, max_length=64)]
    interaction_id: Annotated[str, Field(min_length=1, max_length=64)]
    channel: Channel
    answered: Annotated[list[str], Field(max_length=100)] = Field(
        description="Keys of the answers given, e.g. budget, timeline."
    )


class InteractionAnswersV1(_Strict):
    """Personal data of an interaction."""

    answers: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], AnswerValue]
    summary: Annotated[str, Field(max_length=5000)] | None = None


class ScoredCriterion(_Strict):
    criterion_id: str
    answer: str
    points: int


class LeadScoredV1(_Strict):
    """A score with its explanation (R6, R8). Which criteria matched and their points are
    non-personal; the inputs they saw are in ``pii`` (:class:`ScoreInputsV1`)."""

    lead_id: Annotated[str, Field(min_length=1, max_length=64)]
    score: int
    threshold: int
    qualified: bool
    rules_version: int = Field(ge=1)
    matched: list[ScoredCriterion]
    trigger: Literal["interaction", "restriction_lifted", "rescore"]


CriterionOp = Literal["eq", "ne", "gte", "gt", "lte", "lt", "in", "contains", "exists"]
"""How a scoring criterion compares an answer with its value (the tenant's rules)."""


class CriterionRule(_Strict):
    """The condition a criterion tested, as the tenant's rules stated it when the lead was
    scored. The rules, not the person: non-personal, like the points."""

    op: CriterionOp
    value: AnswerValue | list[AnswerValue] | None = None
    description: Annotated[str, Field(max_length=300)] = ""


class ScoredCriterionV2(_Strict):
    criterion_id: str
    answer: str = Field(description="key of the interaction answer the criterion tested")
    points: int
    rule: CriterionRule | None = Field(
        description="the criterion's condition at scoring time; null when the score was "
        "recorded by a lead.scored v1 producer, which did not record it"
    )


class LeadScoredV2(_Strict):
    """A score with its explanation (R6, R8), now self-contained: each matched criterion
    carries its condition (``rule``). A tenant's rules file holds only its current version,
    so with v1 (criterion id and points only) a score made under an older ``rules_version``
    could no longer be explained from the log once the rules changed. The inputs the criteria
    saw are in ``pii`` (:class:`ScoreInputsV1`, unchanged)."""

    lead_id: Annotated[str, Field(min_length=1, max_length=64)]
    score: int
    threshold: int
    qualified: bool
    rules_version: int = Field(ge=1)
    matched: list[ScoredCriterionV2]
    trigger: Literal["interaction", "restriction_lifted", "rescore"]


class ScoreInputsV1(_Strict):
    """The answers each matched criterion saw, keyed by criterion id."""

    inputs: dict[str, AnswerValue]


class LeadQualifiedV1(_Strict):
    """The lead reached its tenant's qualification threshold; crm-sync pushes it (R7)."""

    lead_id: Annotated[str, Field(min_length=1, max_length=64)]
    score: int
    threshold: int
    by: Literal["rules", "review"]


class LeadScoreReviewedV1(_Strict):
    """A person re-evaluated a score (R8, GDPR art. 22(3)). ``reviewer`` names an operator of
    the tenant, not the data subject."""

    lead_id: Annotated[str, Field(min_length=1, max_length=64)]
    review_id: Annotated[str, Field(min_length=1, max_length=64)]
    previous_score: int | None
    new_score: int
    reviewer: Annotated[str, Field(min_length=1, max_length=200)]


class ScoreReviewReasonV1(_Strict):
    """Why the score was changed; may mention the person, so it is encrypted."""

    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class LeadScoreReviewedV2(_Strict):
    """A person re-evaluated a score (R8, GDPR art. 22(3)). Who reviewed is personal data (a
    name or an e-mail): since v2 it travels encrypted in ``pii`` (:class:`ScoreReviewV2`), so an
    erasure of the subject shreds it with the rest; in clear only a keyed hash of it remains."""

    lead_id: Annotated[str, Field(min_length=1, max_length=64)]
    review_id: Annotated[str, Field(min_length=1, max_length=64)]
    previous_score: int | None
    new_score: int
    reviewer_hash: OperatorHash | None = Field(
        description="HMAC-SHA256 of the reviewer (trimmed, lower case) under lead-ingest's "
        "blind-index key: which operator reviewed, without their name; null for a v1 event"
    )
    legacy_reviewer: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="only on a lead.score_reviewed v1 event read as v2: the reviewer v1 "
        "recorded in clear (the log can't be rewritten); read models drop it on erasure. "
        "A v2 producer never sets it",
    )


class ScoreReviewV2(_Strict):
    """The personal part of a review: why the score was changed (it may mention the person)
    and who changed it."""

    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    reviewer: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="the tenant's operator who reviewed; null for a v1 event"
    )
