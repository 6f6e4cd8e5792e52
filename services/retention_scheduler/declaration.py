"""The retention-scheduler service, declared once: see :mod:`services.common.declaration`."""

from __future__ import annotations

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
from services.common.store import Collections
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

__all__ = ["DECLARATION", "DEFAULTS", "PolicyError", "load_maximums", "validate_period"]
"""Besides the declaration: the retention categories and the rules a tenant's period must
follow (R15, R16), which the operator commands check before they publish a policy."""


def projector(db: Collections) -> Projector:
    store = RetentionStore(db)
    return Projector(store.ensure_indexes, store.apply_all)  # decodes, as live


async def export_part(sources: ExportSources, tenant_id: str, subject_id: str) -> ExportPart:
    return await export.export_part(RetentionStore(sources.db), tenant_id, subject_id)


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
