"""retention-scheduler's part of an access/portability package (R22): for each data category
of the subject, how long it is kept, from which moment, and when it is due; and the legal holds
that suspend expiry. A plain function over retention-scheduler's read model, used by its handler
and by ``leadtrail export``."""

from __future__ import annotations

from services.common.export_package import ExportPart, Record
from services.retention_scheduler.policy import DEFAULTS
from services.retention_scheduler.schedule import RetentionStore, due_key

__all__ = ["SERVICE", "export_part"]

SERVICE = "retention-scheduler"


async def export_part(store: RetentionStore, tenant_id: str, subject_id: str) -> ExportPart:
    retention: list[Record] = []
    for category in DEFAULTS:
        # One lookup by _id per category: FerretDB 1.x pushes only _id filters down.
        document = await store.due.find_one({"_id": due_key(tenant_id, subject_id, category)})
        if document is None or "state" not in document:
            continue  # nothing scheduled (facts waiting for an activity, see schedule.derive)
        policy = await store.policy(tenant_id, category)
        retention.append(
            {
                "category": category,
                "period_days": int(document["period_days"]),
                "counted_from": policy.anchor,
                "anchor_at": document["anchor_at"].isoformat(),
                "due_at": document["due_at"].isoformat(),
                "state": document["state"],
            }
        )
    cursor = store.holds.find(
        {"tenant_id": tenant_id, "$or": [{"subject_id": subject_id}, {"scope": "tenant"}]}
    )
    holds: list[Record] = [
        {"hold_id": str(document["_id"]), "scope": document["scope"], "active": document["active"]}
        async for document in cursor
    ]
    holds.sort(key=lambda hold: str(hold["hold_id"]))
    return ExportPart(service=SERVICE, sections={"retention": retention, "holds": holds})
