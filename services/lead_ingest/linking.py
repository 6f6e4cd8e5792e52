"""Linking records about one person to one data subject per tenant (R5).

The index never holds an e-mail address or phone number: its keys are HMAC-SHA256 of the
normalised identifier under a secret key (a *keyed blind index*), scoped by tenant, so equal
identifiers meet while the index alone reveals nothing and can't be brute-forced without the
key. Each entry is one document ``{_id: "<tenant>:<kind>:<hmac>", subject_id}``, created with
an atomic upsert, so two concurrent leads of the same new person get the same subject.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.common.store import Document

__all__ = ["BlindIndex", "Linked", "SubjectLinker", "new_subject_id"]

Kind = Literal["email", "phone"]


def new_subject_id() -> str:
    return f"sub_{secrets.token_hex(10)}"


class BlindIndex:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def token(self, tenant_id: str, kind: Kind, normalised: str) -> str:
        message = f"{tenant_id}\x1f{kind}\x1f{normalised}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Linked:
    subject_id: str
    matched: tuple[Kind, ...]
    """Identifiers that pointed to an already known subject."""


class SubjectLinker:
    def __init__(self, collection: AsyncCollection[Document], index: BlindIndex) -> None:
        self._collection = collection
        self._index = index

    async def ensure_indexes(self) -> None:
        """An erasure deletes a subject's entries by ``(tenant_id, subject_id)``: without this
        index that delete reads every entry of every tenant (at 100,000 leads, one full scan of
        about 90,000 entries per erasure)."""
        await self._collection.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])

    def _id(self, tenant_id: str, kind: Kind, normalised: str) -> str:
        return f"{tenant_id}:{kind}:{self._index.token(tenant_id, kind, normalised)}"

    async def find(self, tenant_id: str, identifiers: dict[Kind, str]) -> Linked | None:
        """The known subject for these identifiers (e-mail wins over phone), or None."""
        matched: list[Kind] = []
        subject: str | None = None
        for kind in ("email", "phone"):
            value = identifiers.get(kind)
            if value is None:
                continue
            entry = await self._collection.find_one({"_id": self._id(tenant_id, kind, value)})
            if entry is not None:
                matched.append(kind)
                subject = subject or str(entry["subject_id"])
        return Linked(subject, tuple(matched)) if subject else None

    async def link(self, tenant_id: str, identifiers: dict[Kind, str]) -> Linked:
        """The subject for these identifiers, created when none is known.

        Identifiers not yet indexed are attached to that subject. An identifier already
        pointing to another subject keeps pointing there: merging two people is an operator
        decision, not something a form submission may do.
        """
        if not identifiers:
            raise ValueError("at least one identifier is needed to link a subject")
        known = await self.find(tenant_id, identifiers)
        subject_id = known.subject_id if known else new_subject_id()
        for position, (kind, value) in enumerate(identifiers.items()):
            try:
                entry = await self._collection.find_one_and_update(
                    {"_id": self._id(tenant_id, kind, value)},
                    {"$setOnInsert": {"subject_id": subject_id, "tenant_id": tenant_id}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:  # a concurrent upsert of the same identifier won
                entry = await self._collection.find_one({"_id": self._id(tenant_id, kind, value)})
            if known is None and position == 0 and entry is not None:
                # A concurrent request may have created the subject first: the first
                # identifier decides, the others attach to the same subject.
                subject_id = str(entry["subject_id"])
        return Linked(subject_id, known.matched if known else ())

    async def attach(self, tenant_id: str, subject_id: str, identifiers: dict[Kind, str]) -> None:
        """Point identifiers (e.g. a rectified e-mail) at a known subject, if still free."""
        for kind, value in identifiers.items():
            try:
                await self._collection.update_one(
                    {"_id": self._id(tenant_id, kind, value)},
                    {"$setOnInsert": {"subject_id": subject_id, "tenant_id": tenant_id}},
                    upsert=True,
                )
            except DuplicateKeyError:
                continue

    async def forget(self, tenant_id: str, subject_id: str) -> int:
        """Remove the subject's index entries (erasure): the person is no longer recognised."""
        result = await self._collection.delete_many(
            {"tenant_id": tenant_id, "subject_id": subject_id}
        )
        return int(result.deleted_count)
