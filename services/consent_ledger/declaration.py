"""The consent-ledger service, declared once: see :mod:`services.common.declaration`."""

from __future__ import annotations

from contracts.topics import CONSENT_EVENTS, ERASURE_EVENTS, LEAD_EVENTS, PRIVACY_EVENTS
from services.common.consumer import Subscription
from services.common.declaration import (
    KEYS,
    ExportSources,
    Projector,
    ServiceDeclaration,
)
from services.common.export_package import ExportPart
from services.common.purposes import TenantPurposes
from services.common.store import Collections
from services.consent_ledger import export_part as export
from services.consent_ledger.app import build
from services.consent_ledger.handlers import ConsentHandlers
from services.consent_ledger.projection import ConsentProjection
from services.consent_ledger.settings import ConsentSettings

__all__ = ["DECLARATION"]


def projector(db: Collections) -> Projector:
    projection = ConsentProjection(db)
    return Projector(projection.ensure_indexes, projection.apply_all)  # decodes, as live


async def export_part(sources: ExportSources, tenant_id: str, subject_id: str) -> ExportPart:
    return await export.export_part(
        ConsentProjection(sources.db),
        TenantPurposes(sources.config_dir).for_tenant(tenant_id),
        sources.cipher,
        tenant_id,
        subject_id,
    )


DECLARATION: ServiceDeclaration[ConsentSettings, ConsentHandlers] = ServiceDeclaration(
    name="consent-ledger",
    package="services.consent_ledger",
    title="Leadtrail consent-ledger API",
    settings=ConsentSettings,
    subscriptions=(
        Subscription(
            "consent-ledger.leads",
            (LEAD_EVENTS,),
            event_types=frozenset({"lead.captured"}),
            handle_batch=ConsentHandlers.on_events,
        ),
        Subscription(
            "consent-ledger.privacy",
            (PRIVACY_EVENTS,),
            event_types=frozenset({"privacy.request.received", "privacy.request.verified"}),
            handle_batch=ConsentHandlers.on_events,
        ),
        Subscription(
            "consent-ledger.erasure",
            (ERASURE_EVENTS,),
            event_types=frozenset({"erasure.requested"}),
            handle_batch=ConsentHandlers.on_events,
        ),
        Subscription(
            "consent-ledger.ledger", (CONSENT_EVENTS,), handle_batch=ConsentHandlers.on_events
        ),
    ),
    read_models=("consent_subjects", "consent_requests"),
    operational=(KEYS,),
    build=build,
    projector=projector,
    export_part=export_part,
)
