"""The crm-sync service, declared once: see :mod:`services.common.declaration`."""

from __future__ import annotations

from pathlib import Path

from contracts.topics import CONSENT_EVENTS, ERASURE_EVENTS, LEAD_EVENTS, PRIVACY_EVENTS
from services.common.consent import CONSENT_EVENT_TYPES
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
from services.crm_sync import export_part as export
from services.crm_sync.app import build
from services.crm_sync.connections import TenantConnections
from services.crm_sync.domain import LEAD_EVENTS_HANDLED
from services.crm_sync.handlers import CrmSyncHandlers
from services.crm_sync.settings import CrmSettings
from services.crm_sync.store import CrmStore

__all__ = ["DECLARATION", "connections", "outbox_summary"]


def projector(db: Collections) -> Projector:
    store = CrmStore(db)

    async def ensure_indexes() -> None:
        """crm-sync's only index is on the outbox (operational state)."""

    return Projector(ensure_indexes, store.apply_all)  # decodes, as live


async def export_part(sources: ExportSources, tenant_id: str, subject_id: str) -> ExportPart:
    return await export.export_part(
        CrmStore(sources.db),
        TenantConnections(sources.config_dir).for_tenant(tenant_id),
        tenant_id,
        subject_id,
    )


def connections(config_dir: Path, tenant_id: str) -> list[tuple[str, str, str]]:
    """(connection id, adapter kind, recipient name) of each CRM the tenant pushes to."""
    return [
        (c.id, c.adapter.kind, c.recipient.name)
        for c in TenantConnections(config_dir).for_tenant(tenant_id).connections
    ]


async def outbox_summary(db: Collections, tenant_id: str) -> dict[str, Document]:
    """Connection id -> ``pending`` and ``dead`` entries and ``last_delivered_at`` (the
    console's CRM page): what is waiting for each CRM and when it last took something."""
    summary: dict[str, Document] = {}
    async for entry in CrmStore(db).outbox.find(
        {"tenant_id": tenant_id},
        projection={"connection_id": 1, "state": 1, "last_delivered_at": 1},
    ):
        row = summary.setdefault(
            str(entry["connection_id"]), {"pending": 0, "dead": 0, "last_delivered_at": None}
        )
        if entry.get("state") in ("pending", "dead"):
            row[entry["state"]] += 1
        delivered = entry.get("last_delivered_at")
        latest = row["last_delivered_at"]
        if delivered is not None and (latest is None or delivered > latest):
            row["last_delivered_at"] = delivered
    return summary


DECLARATION: ServiceDeclaration[CrmSettings, CrmSyncHandlers] = ServiceDeclaration(
    name="crm-sync",
    package="services.crm_sync",
    title="Leadtrail crm-sync API",
    settings=CrmSettings,
    subscriptions=(
        Subscription(
            "crm-sync.leads",
            (LEAD_EVENTS,),
            event_types=LEAD_EVENTS_HANDLED,
            handle_batch=CrmSyncHandlers.on_events,
        ),
        Subscription(
            "crm-sync.consent",
            (CONSENT_EVENTS,),
            event_types=CONSENT_EVENT_TYPES,
            handle_batch=CrmSyncHandlers.on_events,
        ),
        Subscription(
            "crm-sync.erasure",
            (ERASURE_EVENTS,),
            event_types=frozenset({"erasure.requested"}),
            handle_batch=CrmSyncHandlers.on_events,
        ),
        Subscription(
            "crm-sync.privacy",
            (PRIVACY_EVENTS,),
            event_types=frozenset({"privacy.request.verified"}),
            handle_batch=CrmSyncHandlers.on_events,
        ),
    ),
    read_models=("crm_leads", "crm_subjects"),
    operational=(
        OperationalCollection(
            "crm_outbox", "CRM operations, attempts, deliveries and the CRMs' record ids"
        ),
        OperationalCollection("crm_waits", "CRM calls an erasure or rectification waits for"),
        OperationalCollection("crm_recipients", "recipients announced to tenants"),
        KEYS,
    ),
    build=build,
    projector=projector,
    export_part=export_part,
)
