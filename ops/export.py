"""``leadtrail export``: the access/portability package of one subject, built on the spot.

The same five part builders the services run when they answer an access request (each
service's declared ``export_part``), called directly against the database, and the same
assembler and renderers (:mod:`services.common.export_package`): the package equals what the request
delivers, except for ``request_id`` (none here) and ``generated_at``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from services import declarations
from services.common.clock import Clock, SystemClock
from services.common.crypto import KeyWrapper, MongoDataKeyring, PiiCipher
from services.common.declaration import KEYRING_COLLECTION, ExportSources
from services.common.export_package import ExportPackage, assemble
from services.common.settings import CommonSettings
from services.common.store import Document, database, make_mongo_client
from services.lead_ingest.declaration import subject_of_lead

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
    subject_id = subject_or_lead
    if subject_or_lead.startswith("lead_"):
        found = await subject_of_lead(db, tenant_id, subject_or_lead)
        if found is None:
            raise UnknownSubjectError(f"no lead {subject_or_lead} for tenant {tenant_id}")
        subject_id = found
    sources = ExportSources(db, cipher, config_dir)
    parts = [
        await declaration.export_part(sources, tenant_id, subject_id)
        for declaration in declarations()
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
