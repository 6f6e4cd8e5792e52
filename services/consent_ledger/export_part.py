"""consent-ledger's part of an access/portability package (R22, R23): each purpose with its
legal basis and whether processing is allowed now, every consent given or withdrawn with its
proof, restrictions, objections and suppression. A plain function over consent-ledger's read
model, used by its handler and by ``leadtrail export``."""

from __future__ import annotations

from services.common.consent import decide
from services.common.crypto import PiiCipher
from services.common.export_package import ERASED, ExportPart, Record, iso
from services.common.purposes import PurposeFile
from services.consent_ledger.projection import ConsentProjection

__all__ = ["SERVICE", "export_part"]

SERVICE = "consent-ledger"
CONSENT_TYPES = ("consent.granted", "consent.withdrawn")


async def export_part(
    projection: ConsentProjection,
    declared: PurposeFile,
    cipher: PiiCipher,
    tenant_id: str,
    subject_id: str,
) -> ExportPart:
    document = await projection.subject(tenant_id, subject_id)
    state = projection.state(document)
    bases = declared.bases()
    purposes: list[Record] = []
    for name in sorted(set(bases) | set(state.purposes)):
        decision = decide(state, name, bases)
        current = state.purpose(name)
        declaration = declared.purposes.get(name)
        purposes.append(
            {
                "purpose": name,
                "description": declaration.description if declaration else None,
                "legal_basis": bases.get(name),
                "allowed_now": decision.allowed,
                "reason": decision.reason,
                "consented": current.consented,
                "granted_at": iso(current.granted_at),
                "withdrawn_at": iso(current.withdrawn_at),
                "objected_at": iso(current.objected_at),
            }
        )
    consents: list[Record] = []
    restrictions: list[Record] = []
    for entry in (document or {}).get("history", []):
        record: Record = {
            "event_id": entry["event_id"],
            "type": entry["type"],
            "at": entry["at"].isoformat(),
            **entry["data"],
        }
        if entry["type"] in CONSENT_TYPES:
            if entry["type"] == "consent.granted":
                proof = None
                if entry.get("proof"):
                    proof = await cipher.open_sealed(document or {}, entry["proof"])
                record["proof"] = ERASED if proof is None else proof
            consents.append(record)
        else:
            restrictions.append(record)
    return ExportPart(
        service=SERVICE,
        sections={"purposes": purposes, "consents": consents, "restrictions": restrictions},
    )
