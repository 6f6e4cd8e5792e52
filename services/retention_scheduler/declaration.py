"""The retention-scheduler service, declared once: see :mod:`services.common.declaration`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from contracts.topics import (
    CONSENT_EVENTS,
    ERASURE_EVENTS,
    LEAD_EVENTS,
    PRIVACY_EVENTS,
    RETENTION_EVENTS,
)
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
from services.retention_scheduler import export_part as export
from services.retention_scheduler.app import build
from services.retention_scheduler.domain import CONSENT_CHANGES
from services.retention_scheduler.handlers import RetentionHandlers
from services.retention_scheduler.policy import (
    DEFAULTS,
    PolicyError,
    load_maximums,
    validate_period,
)
from services.retention_scheduler.schedule import RetentionStore
from services.retention_scheduler.settings import RetentionSettings

__all__ = [
    "DECLARATION",
    "DEFAULTS",
    "PolicyError",
    "load_maximums",
    "policies",
    "upcoming_expiries",
    "validate_period",
]
"""Besides the declaration: the retention categories and the rules a tenant's period must
follow (R15, R16), which the operator commands check before they publish a policy."""


def projector(db: Collections) -> Projector:
    store = RetentionStore(db)
    return Projector(store.ensure_indexes, store.apply_all)  # decodes, as live


async def export_part(sources: ExportSources, tenant_id: str, subject_id: str) -> ExportPart:
    return await export.export_part(RetentionStore(sources.db), tenant_id, subject_id)


async def policies(db: Collections, tenant_id: str) -> dict[str, int]:
    """Category -> the tenant's retention period in days (its own, or the seed default)."""
    store = RetentionStore(db)
    return {name: (await store.policy(tenant_id, name)).period_days for name in DEFAULTS}


async def upcoming_expiries(
    db: Collections, tenant_ids: Sequence[str] | None, start: datetime, end: datetime
) -> list[tuple[str, str, datetime]]:
    """(tenant, category, due time) of every open schedule due in ``[start, end)``."""
    query: Document = {"state": "scheduled", "due_at": {"$gte": start, "$lt": end}}
    if tenant_ids is not None:
        query["tenant_id"] = {"$in": list(tenant_ids)}
    return [
        (str(document["tenant_id"]), str(document.get("category", "")), document["due_at"])
        async for document in RetentionStore(db).due.find(query)
    ]


DECLARATION: ServiceDeclaration[RetentionSettings, RetentionHandlers] = ServiceDeclaration(
    name="retention-scheduler",
    package="services.retention_scheduler",
    title="Leadtrail retention-scheduler",
    settings=RetentionSettings,
    subscriptions=(
        Subscription(
            "retention-scheduler",
            (LEAD_EVENTS, CONSENT_EVENTS, RETENTION_EVENTS, ERASURE_EVENTS, PRIVACY_EVENTS),
            handle_batch=RetentionHandlers.on_events,
            event_types=frozenset(
                {
                    "lead.captured",
                    "lead.interaction_recorded",
                    "lead.score_reviewed",
                    "lead.rectified",
                    *CONSENT_CHANGES,
                    "retention.policy_set",
                    "retention.hold_placed",
                    "retention.hold_released",
                    "retention.expired",
                    "erasure.requested",
                    "privacy.request.verified",
                }
            ),
        ),
    ),
    read_models=("retention_due", "retention_policies", "retention_holds"),
    operational=(
        OperationalCollection(
            "retention_claims", "the tick's once-only claims on expiries it publishes"
        ),
        KEYS,
    ),
    build=build,
    projector=projector,
    export_part=export_part,
)
