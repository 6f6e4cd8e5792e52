"""lead-ingest's part of an access/portability package (R22, R23): the subject's leads with
their personal data (corrections applied), sources, interactions, scores, and the privacy
requests made about them. A plain function over lead-ingest's read model, used by its handler
and by ``leadtrail export``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING

from services.common.crypto import PiiCipher
from services.common.export_package import ERASED, ExportPart, Record, iso
from services.lead_ingest.projection import LeadProjection, request_status

__all__ = ["SERVICE", "export_part"]

SERVICE = "lead-ingest"


async def _open(
    cipher: PiiCipher, owner: Mapping[str, Any], sealed: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The decrypted personal data, ``{}`` when there is none, None when it was erased."""
    if not sealed:
        return None if owner.get("erased_at") is not None else {}
    return await cipher.open_sealed(owner, sealed)


async def _contact(cipher: PiiCipher, lead: Mapping[str, Any]) -> dict[str, Any] | None:
    contact = await _open(cipher, lead, lead.get("contact"))
    for rectification in lead.get("rectifications", []):
        corrected = await _open(cipher, lead, rectification.get("sealed"))
        if contact is not None and corrected is not None:
            contact = {**contact, **corrected}
    return contact


async def _score(cipher: PiiCipher, lead: Mapping[str, Any]) -> Record | None:
    score = lead.get("score")
    if not score:
        return None
    inputs = await _open(cipher, lead, score.get("inputs"))
    review = score.get("review")
    reviewed: Record | None = None
    if review:
        reason = await _open(cipher, lead, review.get("reason"))
        reviewed = {
            "review_id": review["review_id"],
            "previous_score": review["previous_score"],
            # encrypted with the reason since v2; a v1 event's in clear until erasure
            "reviewer": ERASED
            if reason is None
            else reason.get("reviewer", review.get("reviewer")),
            "at": review["at"].isoformat(),
            "reason": ERASED if reason is None else reason.get("reason"),
        }
    qualified = lead.get("qualified")
    return {
        "lead_id": lead["_id"],
        "score": score["value"],
        "threshold": score.get("threshold"),
        "rules_version": score.get("rules_version"),
        "source": score.get("source", "rules"),
        "scored_at": iso(score.get("at")),
        "qualified_at": iso(qualified["at"]) if qualified else None,
        "explanation": [
            {
                "criterion_id": m["criterion_id"],
                "answer": m["answer"],
                "points": m["points"],
                "rule": m.get("rule"),
                "input": ERASED
                if inputs is None
                else (inputs.get("inputs") or {}).get(m["criterion_id"]),
            }
            for m in score.get("matched", [])
        ],
        "review": reviewed,
    }


async def export_part(
    projection: LeadProjection, cipher: PiiCipher, tenant_id: str, subject_id: str
) -> ExportPart:
    personal: list[Record] = []
    sources: list[Record] = []
    interactions: list[Record] = []
    scores: list[Record] = []
    leads = sorted(await projection.leads_of(tenant_id, subject_id), key=lambda d: d["captured_at"])
    for lead in leads:
        contact = await _contact(cipher, lead)
        personal.append(
            {
                "lead_id": lead["_id"],
                "captured_at": lead["captured_at"].isoformat(),
                "erased": contact is None,
                "contact": ERASED if contact is None else contact,
            }
        )
        sources.append(
            {
                "lead_id": lead["_id"],
                "captured_at": lead["captured_at"].isoformat(),
                **lead["source"],
                "consent_claimed": lead.get("consent"),
            }
        )
        for item in lead.get("interactions", []):
            answers = await _open(cipher, lead, item.get("answers"))
            interactions.append(
                {
                    "lead_id": lead["_id"],
                    "interaction_id": item["interaction_id"],
                    "channel": item["channel"],
                    "at": item["at"].isoformat(),
                    "answered": item.get("answered", []),
                    "answers": ERASED if answers is None else answers.get("answers", {}),
                    "summary": ERASED if answers is None else answers.get("summary"),
                }
            )
        score = await _score(cipher, lead)
        if score is not None:
            scores.append(score)
    cursor = projection.requests.find(
        {"tenant_id": tenant_id, "subject_id": subject_id}, sort=[("received_at", ASCENDING)]
    )
    requests: list[Record] = [
        {
            "request_id": document["_id"],
            "type": document["type"],
            "status": request_status(document),
            "received_at": document["received_at"].isoformat(),
            "verified_at": iso(document.get("verified_at")),
            "completed_at": iso(document.get("completed_at")),
            "deadline": document["deadline"].isoformat(),
        }
        async for document in cursor
    ]
    return ExportPart(
        service=SERVICE,
        sections={
            "personal_data": personal,
            "sources": sources,
            "interactions": interactions,
            "scores": scores,
            "privacy_requests": requests,
        },
    )
