"""erasure-propagator's part of an access/portability package (R22, R26): the erasures and
rectifications of the subject's data, with the services that confirmed them. A plain function
over erasure-propagator's read model, used by its handler and by ``leadtrail export``."""

from __future__ import annotations

from pydantic import JsonValue

from services.common.export_package import ExportPart, Record, iso
from services.common.store import Document
from services.erasure_propagator.store import ErasureStore

__all__ = ["SERVICE", "export_part"]

SERVICE = "erasure-propagator"


def _receipts(document: Document) -> list[JsonValue]:
    return [
        {"service": service, "at": iso(receipt["at"]), "actions": list(receipt["actions"])}
        for service, receipt in sorted(document.get("receipts", {}).items())
    ]


async def export_part(store: ErasureStore, tenant_id: str, subject_id: str) -> ExportPart:
    owned = {"tenant_id": tenant_id, "subject_id": subject_id}
    erasures: list[Record] = [
        {
            "erasure_id": document["_id"],
            "trigger": document["trigger"]["kind"],
            "request_id": document["trigger"].get("request_id"),
            "state": document["state"],
            "deadline": iso(document.get("deadline")),
            "requested_at": iso(document.get("requested_at")),
            "completed_at": iso(document.get("completed_at")),
            "confirmations": _receipts(document),
        }
        async for document in store.erasures.find(owned)
    ]
    rectifications: list[Record] = [
        {
            "rectification_id": document["_id"],
            "request_id": document.get("request_id"),
            "state": document["state"],
            "confirmations": _receipts(document),
        }
        async for document in store.rectifications.find(owned)
    ]
    return ExportPart(
        service=SERVICE,
        sections={
            "erasures": sorted(erasures, key=lambda e: str(e["erasure_id"])),
            "rectifications": sorted(rectifications, key=lambda r: str(r["rectification_id"])),
        },
    )
