"""Building what goes to a CRM from crm-sync's encrypted copy of the lead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.crypto import PiiCipher
from services.common.store import Document
from services.crm_sync.adapters.base import CrmContact

__all__ = ["MAPPABLE", "build_contact", "mapped_fields"]

MAPPABLE = (
    "lead_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "score",
    "qualified",
    "interaction_summary",
    "source",
)


async def _open(cipher: PiiCipher, lead: Document, sealed: dict[str, Any]) -> dict[str, Any] | None:
    return await cipher.open_sealed(lead, sealed)


async def build_contact(
    cipher: PiiCipher, lead: Document, field_mapping: Mapping[str, str]
) -> CrmContact | None:
    """The lead as the CRM should hold it, or None when its personal data is gone (erased)."""
    if lead.get("erased") or not lead.get("contact"):
        return None
    contact = await _open(cipher, lead, lead["contact"])
    if contact is None:
        return None
    for rectification in lead.get("rectifications", []):
        corrected = await _open(cipher, lead, rectification["sealed"])
        if corrected is None:
            return None
        contact.update(corrected)  # R24: corrected values win
    lines = []
    for interaction in lead.get("interactions", [])[-5:]:
        opened = await _open(cipher, lead, interaction["answers"]) if interaction["answers"] else {}
        if opened is None:
            return None
        answers = "; ".join(f"{k}={v}" for k, v in sorted(opened.get("answers", {}).items()))
        lines.append(f"{interaction['channel']} {interaction['at']:%Y-%m-%d}: {answers}")
    values: dict[str, Any] = {
        "lead_id": lead["_id"],
        "subject_id": lead["subject_id"],
        "tenant_id": lead["tenant_id"],
        "email": contact.get("email"),
        "phone": contact.get("phone"),
        "first_name": contact.get("first_name"),
        "last_name": contact.get("last_name"),
        "company": contact.get("company"),
        "job_title": contact.get("job_title"),
        "score": lead.get("score"),
        "qualified": bool(lead.get("qualified")),
        "interaction_summary": "\n".join(lines) or None,
        "source": lead.get("source", "web_form"),
    }
    extra = {
        crm_name: str(values[field])
        for field, crm_name in field_mapping.items()
        if values.get(field) is not None
    }
    return CrmContact(**values, extra=extra)


def mapped_fields(contact: CrmContact, field_mapping: Mapping[str, str]) -> dict[str, str]:
    """Every known field with a value, under the tenant's names (pull feed)."""
    fields: dict[str, str] = {}
    for name in MAPPABLE:
        value = getattr(contact, name)
        if value is not None:
            fields[field_mapping.get(name, name)] = str(value)
    return fields
