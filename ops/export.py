"""``leadtrail export``: the access/portability package of one subject, built on the spot.

The same five part builders the services run when they answer an access request
(``services/<service>/export_part.py``), called directly against the database, and the same
assembler and renderers (:mod:`services.common.export_package`): the package equals what the request
delivers, except for ``request_id`` (none here) and ``generated_at``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from services.common.clock import Clock, SystemClock
from services.common.crypto import KeyWrapper, MongoDataKeyring, PiiCipher
from services.common.export_package import ExportPackage, assemble
from services.common.purposes import TenantPurposes
from services.common.runtime import KEYRING_COLLECTION
from services.common.settings import CommonSettings
from services.common.store import Document, database, make_mongo_client
from services.consent_ledger import export_part as consent_export
from services.consent_ledger.projection import ConsentProjection
from services.crm_sync import export_part as crm_export
from services.crm_sync.connections import TenantConnections
from services.crm_sync.store import CrmStore
from services.erasure_propagator import export_part as erasure_export
from services.erasure_propagator.store import ErasureStore
from services.lead_ingest import export_part as lead_export
from services.lead_ingest.projection import LeadProjection
from services.retention_scheduler import export_part as retention_export
from services.retention_scheduler.schedule import RetentionStore

__all__ = ["UnknownSubjectError", "build_package", "knows_subject", "open_database"]

TENANT_WIDE = frozenset({"purposes", "holds", "recipients"})
"""Sections that list the tenant's purposes, holds and recipients whether or not it knows the
subject; the others hold only records of the subject."""


class UnknownSubjectError(LookupError):
    pass


@asynccontextmanager
async def open_database(
    settings: CommonSettings,
) -> AsyncIterator[tuple[AsyncDatabase[Document], PiiCipher]]:
    """The deployment's database and a cipher with its keyring (KEK from settings); keys are
    not cached, so a key destroyed a moment ago reads as destroyed."""
    client = make_mongo_client(settings, app_name="leadtrail-operator")
    try:
        db = database(client, settings)
        wrapper = KeyWrapper(settings.kek_bytes(), settings.kek_id)
        yield db, PiiCipher(MongoDataKeyring(db[KEYRING_COLLECTION], wrapper, cache_ttl=0))
    finally:
        await client.close()


def knows_subject(package: ExportPackage) -> bool:
    """Whether any service holds a record of the subject itself."""
    return any(rows for name, rows in package.sections.items() if name not in TENANT_WIDE)


async def build_package(
    db: AsyncDatabase[Document],
    cipher: PiiCipher,
    config_dir: Path,
    tenant_id: str,
    subject_or_lead: str,
    *,
    clock: Clock | None = None,
) -> ExportPackage:
    """The package of a subject (or of a lead's subject); :class:`UnknownSubjectError` when no
    service holds anything about them."""
    leads = LeadProjection(db)
    subject_id = subject_or_lead
    if subject_or_lead.startswith("lead_"):
        lead = await leads.get(tenant_id, subject_or_lead)
        if lead is None:
            raise UnknownSubjectError(f"no lead {subject_or_lead} for tenant {tenant_id}")
        subject_id = str(lead["subject_id"])
    parts = [
        await lead_export.export_part(leads, cipher, tenant_id, subject_id),
        await consent_export.export_part(
            ConsentProjection(db),
            TenantPurposes(config_dir).for_tenant(tenant_id),
            cipher,
            tenant_id,
            subject_id,
        ),
        await retention_export.export_part(RetentionStore(db), tenant_id, subject_id),
        await crm_export.export_part(
            CrmStore(db), TenantConnections(config_dir).for_tenant(tenant_id), tenant_id, subject_id
        ),
        await erasure_export.export_part(ErasureStore(db), tenant_id, subject_id),
    ]
    package = assemble(
        parts,
        tenant_id=tenant_id,
        subject_id=subject_id,
        request_id=None,
        generated_at=(clock or SystemClock()).now(),
    )
    if not knows_subject(package):
        raise UnknownSubjectError(f"no data about subject {subject_id} for tenant {tenant_id}")
    return package
