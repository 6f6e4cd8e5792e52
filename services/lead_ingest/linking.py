"""Linking records about one person to one data subject per tenant (R5).

The index never holds an e-mail address or phone number: its keys are HMAC-SHA256 of the
normalised identifier under a secret key (a *keyed blind index*), scoped by tenant, so equal
identifiers meet while the index alone reveals nothing and can't be brute-forced without the
key. Each entry is one document ``{_id: "<tenant>:<kind>:<hmac>", subject_id}``, created with
an upsert that only inserts, so two concurrent leads of the same new person get the same
subject.

Concurrent requests share their store work (issue 14): the lookups and links that arrive while
one batch is at the store wait for it and then go together, as one ``find`` with ``$in`` and one
unordered ``bulk_write`` of upserts, however many requests there are. One request alone costs
those two round trips (one when every identifier is known), instead of two per identifier.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from pymongo import ASCENDING, DeleteOne, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.common.coalesce import mark_heard
from services.common.store import Document, insert_new

__all__ = ["BlindIndex", "Linked", "SubjectLinker", "new_subject_id"]

Kind = Literal["email", "phone"]
KINDS: tuple[Kind, ...] = ("email", "phone")
"""In the order they decide a subject: e-mail wins over phone."""


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
    created: bool = False
    """The subject id is new: this link made it (so it has no data key yet)."""


@dataclass
class _Request:
    tenant_id: str
    ids: dict[Kind, str]
    """The identifiers' blind-index ``_id``s."""
    create: bool
    """Link (create the subject and the missing entries) rather than only look up."""
    answer: asyncio.Future[Linked | None]


class SubjectLinker:
    def __init__(
        self, collection: AsyncCollection[Document], index: BlindIndex, *, max_batch: int = 200
    ) -> None:
        self._collection = collection
        self._index = index
        self._max_batch = max_batch
        self._waiting: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None
        self.repairs = 0
        """Batches in which another process created an entry first (tests read it)."""

    async def ensure_indexes(self) -> None:
        """An erasure deletes a subject's entries by ``(tenant_id, subject_id)``: without this
        index that delete reads every entry of every tenant (at 100,000 leads, one full scan of
        about 90,000 entries per erasure)."""
        await self._collection.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])

    def _id(self, tenant_id: str, kind: Kind, normalised: str) -> str:
        return f"{tenant_id}:{kind}:{self._index.token(tenant_id, kind, normalised)}"

    async def find(self, tenant_id: str, identifiers: dict[Kind, str]) -> Linked | None:
        """The known subject for these identifiers (e-mail wins over phone), or None."""
        return await self._submit(tenant_id, identifiers, create=False)

    async def link(self, tenant_id: str, identifiers: dict[Kind, str]) -> Linked:
        """The subject for these identifiers, created when none is known.

        Identifiers not yet indexed are attached to that subject. An identifier already
        pointing to another subject keeps pointing there: merging two people is an operator
        decision, not something a form submission may do.
        """
        if not identifiers:
            raise ValueError("at least one identifier is needed to link a subject")
        linked = await self._submit(tenant_id, identifiers, create=True)
        if linked is None:  # pragma: no cover - a link always ends with a subject
            raise RuntimeError("linking gave no subject")
        return linked

    # -- batching ----------------------------------------------------------------------------
    async def _submit(
        self, tenant_id: str, identifiers: dict[Kind, str], *, create: bool
    ) -> Linked | None:
        ids = {kind: self._id(tenant_id, kind, value) for kind, value in identifiers.items()}
        request = _Request(tenant_id, ids, create, asyncio.get_running_loop().create_future())
        request.answer.add_done_callback(mark_heard)
        self._waiting.append(request)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="subject-linker")
        # Shielded: a caller that gives up (its deadline) leaves the batch to finish for the
        # others; the store calls themselves carry the store deadline.
        return await asyncio.shield(request.answer)

    async def _drain(self) -> None:
        """Answer waiting requests, a batch at a time, until none is left."""
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                answers = await self._resolve(batch)
            except asyncio.CancelledError:
                for request in batch + self._waiting:
                    request.answer.cancel()
                self._waiting.clear()
                raise
            except Exception as error:  # the store failed: every request of the batch hears it
                for request in batch:
                    if not request.answer.done():
                        request.answer.set_exception(error)
                continue
            for request, answer in zip(batch, answers, strict=True):
                if not request.answer.done():
                    request.answer.set_result(answer)

    async def _resolve(self, batch: list[_Request]) -> list[Linked | None]:
        """One ``find`` for every identifier of the batch, then the requests in arrival order
        (a later one sees what an earlier one linked), then one ``bulk_write`` of the new
        entries."""
        wanted = sorted({entry_id for request in batch for entry_id in request.ids.values()})
        found = self._collection.find({"_id": {"$in": wanted}}, {"subject_id": 1})
        subjects = {str(doc["_id"]): str(doc["subject_id"]) async for doc in found}
        answers: list[Linked | None] = []
        created: dict[str, tuple[int, str]] = {}  # entry _id -> (request position, subject)
        for position, request in enumerate(batch):
            matched = tuple(kind for kind in KINDS if request.ids.get(kind) in subjects)
            if matched:
                subject_id = subjects[request.ids[matched[0]]]
            elif request.create:
                subject_id = new_subject_id()
            else:
                answers.append(None)
                continue
            if request.create:
                for entry_id in request.ids.values():
                    if entry_id not in subjects:
                        subjects[entry_id] = subject_id
                        created[entry_id] = (position, subject_id)
            answers.append(Linked(subject_id, matched, created=not matched))
        if created:
            lost = await self._insert(created, batch)
            if lost:
                await self._repair(batch, answers, created, lost)
        return answers

    async def _insert(self, created: dict[str, tuple[int, str]], batch: list[_Request]) -> set[str]:
        """Insert the new entries; the ``_id``s another process inserted first (lost)."""
        inserted = await insert_new(
            self._collection,
            {
                entry_id: {"subject_id": subject_id, "tenant_id": batch[position].tenant_id}
                for entry_id, (position, subject_id) in created.items()
            },
        )
        return set(created) - inserted

    async def _repair(
        self,
        batch: list[_Request],
        answers: list[Linked | None],
        created: dict[str, tuple[int, str]],
        lost: set[str],
    ) -> None:
        """Another process created some of the batch's entries between its find and its write
        (two replicas, the same new person at once). Every request that touched such an entry,
        or an entry created for such a request, is undone and done again alone, against what
        the store now holds."""
        self.repairs += 1
        redo: set[int] = set()
        suspect = set(lost)
        while True:
            touching = {
                position
                for position, request in enumerate(batch)
                if suspect & set(request.ids.values())
            }
            if touching <= redo:
                break
            redo |= touching
            suspect |= {entry_id for entry_id, (owner, _) in created.items() if owner in redo}
        undo = [
            DeleteOne({"_id": entry_id, "subject_id": subject_id})
            for entry_id, (owner, subject_id) in created.items()
            if owner in redo and entry_id not in lost
        ]
        if undo:
            await self._collection.bulk_write(undo, ordered=False)
        for position in sorted(redo):
            request = batch[position]
            answers[position] = (
                await self._link_alone(request)
                if request.create
                else await self._find_alone(request)
            )

    async def _find_alone(self, request: _Request) -> Linked | None:
        found = self._collection.find(
            {"_id": {"$in": list(request.ids.values())}}, {"subject_id": 1}
        )
        subjects = {str(doc["_id"]): str(doc["subject_id"]) async for doc in found}
        matched = tuple(kind for kind in KINDS if request.ids.get(kind) in subjects)
        return Linked(subjects[request.ids[matched[0]]], matched) if matched else None

    async def _link_alone(self, request: _Request) -> Linked:
        """One request against concurrent writers: each entry with an atomic upsert, the first
        identifier deciding the subject when none was known."""
        known = await self._find_alone(request)
        new_id = new_subject_id()
        subject_id = known.subject_id if known else new_id
        for position, entry_id in enumerate(request.ids.values()):
            try:
                entry = await self._collection.find_one_and_update(
                    {"_id": entry_id},
                    {"$setOnInsert": {"subject_id": subject_id, "tenant_id": request.tenant_id}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:  # a concurrent upsert of the same identifier won
                entry = await self._collection.find_one({"_id": entry_id})
            if known is None and position == 0 and entry is not None:
                subject_id = str(entry["subject_id"])
        return Linked(subject_id, known.matched if known else (), created=subject_id == new_id)

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
