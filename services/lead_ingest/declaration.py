"""The lead-ingest service, declared once: see :mod:`services.common.declaration`."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import ASCENDING

from contracts.topics import CONSENT_EVENTS, ERASURE_EVENTS, LEAD_EVENTS, PRIVACY_EVENTS
from services.common.consumer import Subscription
from services.common.declaration import (
    KEYS,
    ExportSources,
    OperationalCollection,
    Projector,
    ServiceDeclaration,
)
from services.common.export_package import ExportPart
from services.common.store import Collections, Document
from services.lead_ingest import export_part as export
from services.lead_ingest.app import build
from services.lead_ingest.domain import REQUESTS
from services.lead_ingest.handlers import LeadIngestHandlers
from services.lead_ingest.projection import LeadProjection, request_status
from services.lead_ingest.settings import IngestSettings

__all__ = ["DECLARATION", "privacy_requests", "subject_of_lead"]


def projector(db: Collections) -> Projector:
    projection = LeadProjection(db)
    return Projector(projection.ensure_indexes, projection.apply_all)  # decodes, as live


async def export_part(sources: ExportSources, tenant_id: str, subject_id: str) -> ExportPart:
    return await export.export_part(
        LeadProjection(sources.db), sources.cipher, tenant_id, subject_id
    )


async def subject_of_lead(db: Collections, tenant_id: str, lead_id: str) -> str | None:
    """The subject of one of the tenant's leads, as the read model knows it (operator commands
    that take a lead id where a subject is meant)."""
    lead = await LeadProjection(db).get(tenant_id, lead_id)
    return None if lead is None else str(lead["subject_id"])


async def privacy_requests(
    db: Collections,
    tenant_ids: Sequence[str] | None,
    *,
    request_type: str | None = None,
    limit: int | None = None,
) -> list[Document]:
    """The register of privacy requests (of ``tenant_ids``, or of every tenant; of one type),
    each with its ``status`` as the API reports it, earliest deadline first, at most
    ``limit`` (the console's requests page)."""
    query: Document = {} if tenant_ids is None else {"tenant_id": {"$in": list(tenant_ids)}}
    if request_type is not None:
        query["type"] = request_type
    cursor = db[REQUESTS].find(query, sort=[("deadline", ASCENDING)], limit=limit or 0)
    return [{**document, "status": request_status(document)} async for document in cursor]


DECLARATION: ServiceDeclaration[IngestSettings, LeadIngestHandlers] = ServiceDeclaration(
    name="lead-ingest",
    package="services.lead_ingest",
    title="Leadtrail lead-ingest API",
    settings=IngestSettings,
    subscriptions=tuple(
        Subscription(group_id, (topic,), handle_batch=LeadIngestHandlers.on_events)
        for group_id, topic in (
            ("lead-ingest.leads", LEAD_EVENTS),
            ("lead-ingest.subjects", CONSENT_EVENTS),
            ("lead-ingest.privacy", PRIVACY_EVENTS),
            ("lead-ingest.erasure", ERASURE_EVENTS),
        )
    ),
    read_models=("leads", "subjects", "privacy_requests"),
    operational=(
        OperationalCollection("idempotency", "Idempotency-Key claims of API requests, not events"),
        OperationalCollection(
            "subject_index",
            "keyed blind index written by the API before the event exists; "
            "erasure deletes its entries",
        ),
        OperationalCollection(
            "verification_tokens", "one-time tokens of privacy-request verification"
        ),
        OperationalCollection(
            "exports",
            "access packages assembled from the services' export parts, encrypted under the "
            "subject's key: a delivery, not a read model",
        ),
        KEYS,
    ),
    build=build,
    projector=projector,
    export_part=export_part,
    max_body_bytes=lambda settings: settings.max_body_bytes,
)
