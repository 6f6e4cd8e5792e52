"""crm-sync's part of an access/portability package (R22, R27): the recipients of the
subject's data (the tenant's CRM connections: who, where, which data, on which basis) and, per
lead, whether it reached each of them (ever: an update queued after a delivery does not undo
it), when it last did, and under which CRM record id. A plain function over crm-sync's read
model, used by its handler and by ``leadtrail export``."""

from __future__ import annotations

from pydantic import JsonValue

from services.common.export_package import ExportPart, Record, iso
from services.crm_sync.connections import CrmFile
from services.crm_sync.store import CrmStore, outbox_id

__all__ = ["SERVICE", "export_part"]

SERVICE = "crm-sync"


async def export_part(
    store: CrmStore, connections: CrmFile, tenant_id: str, subject_id: str
) -> ExportPart:
    lead_ids = await store.lead_ids(tenant_id, subject_id)
    recipients: list[Record] = []
    for connection in connections.connections:
        deliveries: list[JsonValue] = []
        for lead_id in lead_ids:
            entry = await store.outbox.find_one({"_id": outbox_id(lead_id, connection.id)})
            if entry is None:
                continue
            deliveries.append(
                {
                    "lead_id": lead_id,
                    "record_id": entry.get("record_id") or entry.get("deleted_record_id"),
                    "operation": entry["operation"],
                    "state": entry["state"],
                    "last_delivered_at": iso(entry.get("last_delivered_at")),
                }
            )
        recipients.append(
            {
                "connection_id": connection.id,
                "kind": connection.adapter.kind,
                "name": connection.recipient.name,
                "location": connection.recipient.location,
                "data_categories": list(connection.recipient.data_categories),
                "basis": connection.recipient.basis,
                "received": any(
                    isinstance(d, dict) and d["last_delivered_at"] is not None for d in deliveries
                ),
                "leads": deliveries,
            }
        )
    return ExportPart(service=SERVICE, sections={"recipients": recipients})
