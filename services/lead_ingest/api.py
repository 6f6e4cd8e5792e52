"""The tenant-facing HTTP API of lead-ingest (R1-R8, R21, R26).

Every route authenticates the tenant by API key (401), answers only about that tenant's data
(another tenant's lead is a plain 404) and reports errors as problem+json. A write answers 202
only after Kafka acknowledged its event with ``acks=all``; when Kafka can't be reached it
answers 503 and nothing was accepted.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import uuid_utils
from fastapi import APIRouter, Header, Response
from pydantic import BaseModel

from contracts.events import lead, privacy
from services.common.clear_fields import operator_hash
from services.common.consent_claims import check_consent
from services.common.http import (
    Caller,
    ProblemError,
    PublicRateLimits,
    problem_responses,
    publish_or_503,
)
from services.common.logging import current_correlation_id, get_logger, message_context
from services.common.netprivacy import shorten_ip
from services.common.publisher import derived_event_id
from services.common.runtime import Runtime
from services.common.store import Document
from services.common.tenants import Tenant
from services.lead_ingest.deadlines import request_deadline
from services.lead_ingest.export_assembly import export_link
from services.lead_ingest.handlers import LeadIngestHandlers, consent_state
from services.lead_ingest.idempotency import IdempotencyStore, request_fingerprint
from services.lead_ingest.linking import Kind, Linked, SubjectLinker, new_subject_id
from services.lead_ingest.normalise import (
    InvalidContactError,
    email_link_form,
    normalise_email,
    normalise_phone,
)
from services.lead_ingest.projection import LeadProjection, request_status
from services.lead_ingest.schemas import (
    Accepted,
    AggregateRow,
    ContactIn,
    Explanation,
    InteractionAccepted,
    InteractionIn,
    InteractionView,
    LeadIn,
    LeadView,
    PrivacyRequestAccepted,
    PrivacyRequestIn,
    PrivacyRequestView,
    ReceiptView,
    ScoreReviewAccepted,
    ScoreReviewIn,
    ScoreView,
    SubjectRef,
    VerifyIn,
)
from services.lead_ingest.settings import IngestSettings

__all__ = ["RULES_BEYOND_THE_SCHEMA", "IngestApi", "build_router"]

log = get_logger(__name__)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="retries with the same key return the first response and add no event",
    ),
]

RULES_BEYOND_THE_SCHEMA = {
    "invalid-contact": "an e-mail address or phone number that does not parse",
    "consent-in-the-future": "consent given after the request arrived",
    "unknown-purpose": "a purpose the tenant did not declare",
    "idempotency-key-reused": "an Idempotency-Key already used for another body",
    "invalid-verification-token": "not the token handed out, used, or expired",
}
"""422 problems for requests that match the OpenAPI document: everything else it states."""

PROBLEMS = problem_responses(
    {
        400: "the body is not parseable JSON",
        401: "missing or invalid API key",
        404: "no such resource for this tenant",
        413: "request body too large",
        422: "validation-error: the request does not match this document (with an errors "
        "list); or a rule a schema cannot state: "
        + ", ".join(f"{slug} ({why})" for slug, why in RULES_BEYOND_THE_SCHEMA.items()),
        429: "rate limited; see Retry-After",
        503: "Kafka or the document store unavailable; retry (same Idempotency-Key)",
    }
)


ERASED = "lead-erased: the lead's person was erased; nothing more is recorded about them"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid_utils.uuid7().hex}"


@dataclass
class IngestApi:
    runtime: Runtime
    settings: IngestSettings
    public: PublicRateLimits
    linker: SubjectLinker
    idempotency: IdempotencyStore
    projection: LeadProjection
    handlers: LeadIngestHandlers

    # -- helpers --------------------------------------------------------------------------
    def identifiers(self, contact: ContactIn | SubjectRef, tenant: Tenant) -> dict[Kind, str]:
        found: dict[Kind, str] = {}
        try:
            if contact.email:
                found["email"] = email_link_form(normalise_email(contact.email))
            if contact.phone:
                found["phone"] = normalise_phone(
                    contact.phone, contact.phone_region or tenant.default_region
                )
        except InvalidContactError as error:
            raise ProblemError(
                422,
                "invalid-contact",
                "A contact detail is not valid",
                str(error),
                errors=[{"field": f"contact.{error.field}", "message": str(error)}],
            ) from None
        return found

    async def publish(self, data: BaseModel, **kwargs: Any) -> None:
        """Publish and wait for ``acks=all``; any failure is a 503 and nothing was accepted."""
        await publish_or_503(
            self.runtime.publisher,
            data,
            within_s=self.settings.publish_timeout_s,
            hint="retry later (with the same Idempotency-Key)",
            **kwargs,
        )

    def normalise_corrections(self, tenant: Tenant, corrections: dict[str, str]) -> dict[str, str]:
        """Rectified e-mail and phone are normalised like any lead's, or refused (422)."""
        try:
            if "email" in corrections:
                corrections["email"] = normalise_email(corrections["email"])
            if "phone" in corrections:
                corrections["phone"] = normalise_phone(corrections["phone"], tenant.default_region)
        except InvalidContactError as error:
            raise ProblemError(
                422,
                "invalid-contact",
                "A corrected contact detail is not valid",
                str(error),
                errors=[{"field": f"corrections.{error.field}", "message": str(error)}],
            ) from None
        return corrections

    def check_consent(self, tenant: Tenant, body: LeadIn) -> None:
        """The consent claims hold to the rules consent-ledger's API applies too (422)."""
        if body.consent is None:
            return
        check_consent(
            purposes=body.consent.purposes,
            given_at=body.consent.given_at,
            now=self.runtime.clock.now(),
            declared=self.handlers.purposes.for_tenant(tenant.id),
            given_at_field="consent.given_at",
            purpose_field="consent.purposes.{index}",
        )

    async def owned_lead(self, tenant: Tenant, lead_id: str) -> Document:
        document = await self.projection.get(tenant.id, lead_id)
        if document is None:
            raise ProblemError(404, "not-found", "Not found", f"no lead {lead_id}")
        return document

    async def writable_lead(self, tenant: Tenant, lead_id: str) -> Document:
        """The lead, for a write that brings new data about its person: 410 once erased."""
        document = await self.owned_lead(tenant, lead_id)
        await self.refuse_if_erased(tenant, str(document["subject_id"]), document)
        return document

    async def refuse_if_erased(
        self, tenant: Tenant, subject_id: str, document: Document | None = None
    ) -> None:
        """``410 lead-erased`` when the person was erased (the lead or its subject marked by
        ``erasure.requested``). Accepting the write would publish new personal data under a
        new key generation that no erasure destroys, while every read calls the lead erased."""
        erased = document is not None and document.get("erased_at") is not None
        if not erased:
            subject = await self.projection.subject(tenant.id, subject_id)
            erased = subject.get("erased_at") is not None
        if erased:
            raise ProblemError(
                410,
                "lead-erased",
                "This person's data was erased",
                "the lead's person was erased; nothing more may be recorded about them (R20)",
            )

    # -- leads ----------------------------------------------------------------------------
    async def capture(
        self, tenant: Tenant, body: LeadIn, idempotency_key: str | None, correlation_id: str
    ) -> tuple[int, dict[str, Any]]:
        self.check_consent(tenant, body)
        identifiers = self.identifiers(body.contact, tenant)
        email = normalise_email(body.contact.email) if body.contact.email else None
        ids = {"lead_id": new_id("lead"), "event_id": str(uuid_utils.uuid7())}
        if idempotency_key is not None:
            claim = await self.idempotency.claim(
                tenant.id,
                idempotency_key,
                request_fingerprint(body.model_dump(mode="json")),
                ids,
                self.runtime.clock.now(),
            )
            if claim.outcome == "replay" and claim.response is not None:
                return claim.status or 202, claim.response
            if claim.outcome == "mismatch":
                raise ProblemError(
                    422,
                    "idempotency-key-reused",
                    "Idempotency-Key already used for another request",
                    "a key names exactly one request body",
                )
            if claim.outcome == "in_progress":
                raise ProblemError(
                    409,
                    "request-in-progress",
                    "The first request with this Idempotency-Key is still running",
                    headers={"Retry-After": "1"},
                )
            ids = claim.ids
        try:
            linked = await self.link_subject(tenant, body, identifiers)
            contact = body.contact
            await self.publish(
                lead.LeadCapturedV1(
                    lead_id=ids["lead_id"],
                    source=body.source.as_event(),
                    consent=body.consent,
                    linked_by=list(linked.matched),
                    fields_present=sorted(
                        k for k, v in contact.model_dump().items() if v and k != "phone_region"
                    ),
                ),
                pii=lead.LeadContactV1(
                    email=email,
                    phone=identifiers.get("phone"),
                    first_name=contact.first_name,
                    last_name=contact.last_name,
                    company=contact.company,
                    job_title=contact.job_title,
                    message=contact.message,
                    ip_prefix=shorten_ip(body.context.ip if body.context else None),
                    user_agent=body.context.user_agent if body.context else None,
                ),
                tenant_id=tenant.id,
                subject_id=linked.subject_id,
                correlation_id=correlation_id,
                event_id=ids["event_id"],
            )
        except ProblemError:
            if idempotency_key is not None:
                await self.idempotency.release(tenant.id, idempotency_key)
            raise
        response = Accepted(lead_id=ids["lead_id"], subject_id=linked.subject_id).model_dump()
        if idempotency_key is not None:
            await self.idempotency.complete(
                tenant.id, idempotency_key, response, 202, self.runtime.clock.now()
            )
        return 202, response

    async def link_subject(
        self, tenant: Tenant, body: LeadIn, identifiers: dict[Kind, str]
    ) -> Linked:
        """The lead's data subject (created when new, with its first data key). Third-party
        data about a person on the suppression list is refused first (R13)."""
        known = None
        if body.source.kind == "third_party":
            known = await self.linker.find(tenant.id, identifiers)
            if known is not None:
                subject = await self.projection.subject(tenant.id, known.subject_id)
                if subject.get("suppressed"):
                    raise ProblemError(
                        409,
                        "subject-suppressed",
                        "This person opted out",
                        "the person is on the tenant's suppression list; third-party data "
                        "about them is refused (R13)",
                    )
        if known is not None and len(known.matched) == len(identifiers):
            return known  # every identifier is indexed: linking would only find this again
        linked = await self.linker.link(tenant.id, identifiers)
        if linked.created:  # its first key: written with its pointer, nothing to look up
            await self.runtime.keyring.create_first(tenant.id, linked.subject_id)
        return linked

    async def view(self, tenant: Tenant, document: Document) -> LeadView:
        contact = (
            await self.handlers.open(document, document["contact"])
            if document.get("contact")
            else {}
        )
        for rectification in document.get("rectifications", []):
            corrected = await self.handlers.open(document, rectification["sealed"])
            if contact is not None and corrected is not None:
                contact = {**contact, **corrected}  # R24: corrected values win
        erased = contact is None or document.get("erased_at") is not None
        if erased:
            contact = None
        interactions = []
        for item in document.get("interactions", []):
            opened: dict[str, Any] | None = None
            if not erased:
                opened = (
                    await self.handlers.open(document, item["answers"])
                    if item.get("answers")
                    else {}
                )
            interactions.append(
                InteractionView(
                    interaction_id=item["interaction_id"],
                    channel=item["channel"],
                    at=item["at"],
                    answered=item.get("answered", []),
                    answers=None if opened is None else opened.get("answers", {}),
                    summary=None if opened is None else opened.get("summary"),
                )
            )
        score = await self.score_view(document)
        subject = await self.projection.subject(tenant.id, document["subject_id"])
        consents = consent_state(subject)
        qualified = document.get("qualified")
        state = (
            "erased"
            if erased
            else "qualified"
            if qualified
            else "scored"
            if score is not None
            else "captured"
        )
        return LeadView(
            lead_id=document["_id"],
            subject_id=document["subject_id"],
            state=state,
            captured_at=document["captured_at"],
            updated_at=document["updated_at"],
            source=document["source"],
            consent=document.get("consent"),
            contact=contact,
            interactions=interactions,
            score=score,
            qualified_at=qualified["at"] if qualified else None,
            processing={
                "restricted": consents.restricted,
                "objections": sorted(
                    name for name, p in consents.purposes.items() if p.objected_at is not None
                ),
                "suppressed": bool(subject.get("suppressed")),
                "scoring_paused": self.handlers.blocked(tenant.id, subject),
            },
        )

    async def score_view(self, document: Document) -> ScoreView | None:
        score = document.get("score")
        if not score:
            return None
        inputs: dict[str, Any] | None = {}
        if score.get("inputs"):
            opened = await self.handlers.open(document, score["inputs"])
            inputs = None if opened is None else opened.get("inputs", {})
        review = score.get("review")
        if review is not None:
            reason = (
                await self.handlers.open(document, review["reason"]) if review.get("reason") else {}
            )
            review = {
                "review_id": review["review_id"],
                "previous_score": review["previous_score"],
                # encrypted with the reason since v2; a v1 event's in clear until erasure
                "reviewer": None
                if reason is None
                else reason.get("reviewer", review.get("reviewer")),
                "at": review["at"],
                "reason": None if reason is None else reason.get("reason"),
            }
        return ScoreView(
            value=score["value"],
            threshold=score.get("threshold"),
            qualified=bool(document.get("qualified")),
            rules_version=score.get("rules_version"),
            source=score.get("source", "rules"),
            explanation=[
                Explanation(
                    criterion_id=m["criterion_id"],
                    answer=m["answer"],
                    points=m["points"],
                    input=None if inputs is None else inputs.get(m["criterion_id"]),
                    rule=m.get("rule"),
                )
                for m in score.get("matched", [])
            ],
            review=review,
        )

    # -- privacy requests -------------------------------------------------------------------
    async def resolve_subject(self, tenant: Tenant, ref: SubjectRef) -> tuple[str, bool, list[str]]:
        identified_by: list[str] = []
        if ref.lead_id:
            identified_by.append("lead_id")
            document = await self.projection.get(tenant.id, ref.lead_id)
            if document is None:
                raise ProblemError(404, "not-found", "Not found", f"no lead {ref.lead_id}")
            return str(document["subject_id"]), True, identified_by
        identifiers = self.identifiers(ref, tenant)
        identified_by.extend(identifiers)
        known = await self.linker.find(tenant.id, identifiers)
        if known is None:
            return new_subject_id(), False, identified_by
        return known.subject_id, True, identified_by

    async def receive_privacy_request(
        self, who: Tenant, body: PrivacyRequestIn
    ) -> PrivacyRequestAccepted:
        subject_id, known, identified_by = await self.resolve_subject(who, body.subject)
        if known and body.type == "rectification":
            await self.refuse_if_erased(who, subject_id)  # corrections are new personal data
        request_id = new_id("pr")
        correlation_id = current_correlation_id()
        now = self.runtime.clock.now()
        deadline = request_deadline(
            body.type,
            now,
            calendar_days=self.settings.request_deadline_days,
            erasure_working_days=self.settings.erasure_deadline_working_days,
        )
        token = None
        if body.verification.method == "token":
            token = secrets.token_urlsafe(24)
            await self.runtime.db["verification_tokens"].insert_one(
                {
                    "_id": hashlib.sha256(token.encode()).hexdigest(),
                    "request_id": request_id,
                    "tenant_id": who.id,
                    "subject_id": subject_id,
                    "request_type": body.type,
                    "expires_at": now + timedelta(days=7),
                }
            )
        contact = body.subject
        identifiers = self.identifiers(contact, who) if (contact.email or contact.phone) else {}
        corrections = self.normalise_corrections(
            who, {str(field): value for field, value in body.corrections.items()}
        )
        await self.publish(
            privacy.PrivacyRequestReceivedV1(
                request_id=request_id,
                request_type=body.type,
                relayed_by_tenant=body.relayed_by_tenant,
                subject_known=known,
                identified_by=identified_by,
                deadline=deadline,
                verification=body.verification.method,
                purposes=body.purposes,
                rectify_fields=sorted(body.corrections),
            ),
            pii=privacy.PrivacyRequestContactV1(
                email=normalise_email(contact.email) if contact.email else None,
                phone=identifiers.get("phone"),
                corrections=corrections,
                note=body.note,
            ),
            tenant_id=who.id,
            subject_id=subject_id,
            correlation_id=correlation_id,
        )
        if body.verification.method != "tenant_attestation":
            return PrivacyRequestAccepted(
                request_id=request_id,
                status="received",
                deadline=deadline,
                verification_token=token,
            )
        await self.publish(
            privacy.PrivacyRequestVerifiedV2(
                request_id=request_id,
                request_type=body.type,
                method="tenant_attestation",
                attested_by_hash=operator_hash(
                    self.settings.blind_index_bytes(), body.verification.attested_by
                ),
            ),
            pii=privacy.PrivacyRequestAttestationV2(attested_by=body.verification.attested_by),
            tenant_id=who.id,
            subject_id=subject_id,
            correlation_id=correlation_id,
        )
        return PrivacyRequestAccepted(request_id=request_id, status="verified", deadline=deadline)

    async def verify_privacy_request(
        self, who: Tenant, request_id: str, body: VerifyIn
    ) -> PrivacyRequestAccepted:
        """The token is used up only once the verification is on the log: deleted first, a
        failed publish (a 503, or the process killed in between) would leave the request
        unverifiable, the client's retry refused as "used". A retry after a publish that did
        land republishes the same event id, which consumers already handled."""
        tokens = self.runtime.db["verification_tokens"]
        token_id = hashlib.sha256(body.token.encode()).hexdigest()
        record = await tokens.find_one({"_id": token_id})
        if (
            record is None
            or record["request_id"] != request_id
            or record["tenant_id"] != who.id
            or record["expires_at"] < self.runtime.clock.now()
        ):
            raise ProblemError(
                422,
                "invalid-verification-token",
                "The verification token is wrong, used or expired",
            )
        await self.publish(
            privacy.PrivacyRequestVerifiedV2(
                request_id=request_id, request_type=record["request_type"], method="token"
            ),
            tenant_id=who.id,
            subject_id=record["subject_id"],
            correlation_id=current_correlation_id(),
            event_id=derived_event_id(request_id, "privacy.request.verified/token"),
        )
        await tokens.delete_one({"_id": token_id})
        view = await self.projection.request(who.id, request_id)
        deadline = view["deadline"] if view else self.runtime.clock.now()
        return PrivacyRequestAccepted(request_id=request_id, status="verified", deadline=deadline)


def build_router(api: IngestApi) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=PROBLEMS)

    @router.post(
        "/leads",
        status_code=202,
        response_model=Accepted,
        summary="Accept a lead from a web form or a third-party source",
        responses=problem_responses(
            {
                409: "the person opted out (third-party data refused), or a request with this "
                "Idempotency-Key is still running"
            }
        ),
    )
    async def post_lead(
        body: LeadIn, who: Caller, response: Response, idempotency_key: IdempotencyKey = None
    ) -> dict[str, Any]:
        correlation_id = current_correlation_id()
        with message_context(tenant_id=who.id, correlation_id=correlation_id):
            status, payload = await api.capture(who, body, idempotency_key, correlation_id)
        response.status_code = status
        response.headers["Location"] = f"/v1/leads/{payload['lead_id']}"
        return payload

    @router.get(
        "/aggregates",
        response_model=list[AggregateRow],
        summary="Anonymous lead counts per month, source and score band (R19)",
    )
    async def get_aggregates(who: Caller) -> list[AggregateRow]:
        rows = await api.projection.aggregates(who.id)
        return sorted(
            (
                AggregateRow(
                    month=row["_id"].get("month") or "",
                    source=row["_id"].get("source") or "",
                    score_band=row["_id"].get("band") or "unscored",
                    leads=int(row["leads"]),
                )
                for row in rows
            ),
            key=lambda r: (r.month, r.source, r.score_band),
        )

    @router.get("/leads/{lead_id}", response_model=LeadView, summary="The current lead")
    async def get_lead(lead_id: str, who: Caller) -> LeadView:
        return await api.view(who, await api.owned_lead(who, lead_id))

    @router.post(
        "/leads/{lead_id}/interactions",
        status_code=202,
        response_model=InteractionAccepted,
        summary="Record answers gathered on a channel (WhatsApp, phone, e-mail, chat)",
        responses=problem_responses({410: ERASED}),
    )
    async def post_interaction(
        lead_id: str, body: InteractionIn, who: Caller
    ) -> InteractionAccepted:
        document = await api.writable_lead(who, lead_id)
        interaction_id = new_id("int")
        await api.publish(
            lead.LeadInteractionRecordedV1(
                lead_id=lead_id,
                interaction_id=interaction_id,
                channel=body.channel,
                answered=sorted(body.answers),
            ),
            pii=lead.InteractionAnswersV1(answers=body.answers, summary=body.summary),
            tenant_id=who.id,
            subject_id=document["subject_id"],
            correlation_id=current_correlation_id(),
        )
        return InteractionAccepted(lead_id=lead_id, interaction_id=interaction_id)

    @router.post(
        "/leads/{lead_id}/score-reviews",
        status_code=202,
        response_model=ScoreReviewAccepted,
        summary="A person overrides the score, with a reason (R8)",
        responses=problem_responses({409: "processing of the subject is restricted", 410: ERASED}),
    )
    async def post_score_review(
        lead_id: str, body: ScoreReviewIn, who: Caller
    ) -> ScoreReviewAccepted:
        document = await api.writable_lead(who, lead_id)
        subject = await api.projection.subject(who.id, document["subject_id"])
        if consent_state(subject).restricted:
            raise ProblemError(
                409,
                "processing-restricted",
                "Processing of this person is restricted",
                "the lead is stored but may not be scored until the restriction is lifted (R14)",
            )
        review_id = new_id("rev")
        await api.publish(
            lead.LeadScoreReviewedV2(
                lead_id=lead_id,
                review_id=review_id,
                previous_score=(document.get("score") or {}).get("value"),
                new_score=body.score,
                reviewer_hash=operator_hash(api.settings.blind_index_bytes(), body.reviewer),
            ),
            pii=lead.ScoreReviewV2(reason=body.reason, reviewer=body.reviewer),
            tenant_id=who.id,
            subject_id=document["subject_id"],
            correlation_id=current_correlation_id(),
        )
        return ScoreReviewAccepted(lead_id=lead_id, review_id=review_id)

    @router.post(
        "/privacy-requests",
        status_code=202,
        response_model=PrivacyRequestAccepted,
        summary="Record a data-subject request (access, erasure, ...)",
        responses=problem_responses({410: "lead-erased: a rectification of an erased person"}),
    )
    async def post_privacy_request(body: PrivacyRequestIn, who: Caller) -> PrivacyRequestAccepted:
        return await api.receive_privacy_request(who, body)

    @router.post(
        "/privacy-requests/{request_id}/verify",
        status_code=202,
        response_model=PrivacyRequestAccepted,
        summary="Verify a request with the token handed to the requester",
    )
    async def verify_privacy_request(
        request_id: str, body: VerifyIn, who: Caller
    ) -> PrivacyRequestAccepted:
        return await api.verify_privacy_request(who, request_id, body)

    @router.get(
        "/privacy-requests/{request_id}",
        response_model=PrivacyRequestView,
        summary="Status and deadline of a data-subject request; for access and portability, "
        "a signed link to the answer once it is ready",
    )
    async def get_privacy_request(request_id: str, who: Caller) -> PrivacyRequestView:
        document = await api.projection.request(who.id, request_id)
        if document is None or "type" not in document:  # (an answer seen before the request)
            raise ProblemError(404, "not-found", "Not found", f"no privacy request {request_id}")
        status = request_status(document)
        return PrivacyRequestView(
            request_id=request_id,
            type=document["type"],
            status=status,
            subject_known=bool(document.get("subject_known")),
            received_at=document["received_at"],
            verified_at=document.get("verified_at"),
            deadline=document["deadline"],
            completed_at=document.get("completed_at"),
            receipts=[ReceiptView(**receipt) for receipt in document.get("receipts", [])],
            missing_receipts=[] if status == "completed" else document.get("missing_receipts", []),
            export=export_link(
                api.settings.export_link_bytes(),
                ttl_s=api.settings.export_link_ttl_s,
                now=api.runtime.clock.now(),
                base_url=api.settings.public_base_url(),
                tenant_id=who.id,
                request=document,
            ),
        )

    return router
