"""The store side of the batch pipeline: load what a batch touches, fold it, write it back.

A service describes its read model as a :class:`ReadModel`: which documents an event touches
(:meth:`ReadModel.refs`) and a *pure* :meth:`ReadModel.apply` (documents in, changed documents
out: no I/O, the same answer for the same input), kept in the service's ``domain.py``.
:class:`BatchFolder` runs it over a batch of decoded events:

1. one ``find({_id: {$in: [...]}})`` per collection loads every document the batch touches
   (and one more per collection when documents name further documents: a subject its leads);
2. ``apply`` runs over the events in the batch's order (offset order per partition, so per
   subject), each seeing the documents as the events before it left them;
3. one ordered ``bulk_write`` per collection writes the changed documents back, collection
   after collection in the order the batch first changed them.

**Exactly once without locks.** Every document carries a version (``_v``) and the ids of the
last :data:`~services.common.store.APPLIED_WINDOW` events applied to it (``_applied``). An
event is never applied twice to a document (a redelivery after a crash between the write and
the offset commit changes nothing), and every write is conditional on the version read: the
filter names it and the write is an upsert, so a document changed meanwhile (another replica
during a rebalance, a concurrent batch of another consumer group) makes the upsert collide on
``_id`` (a duplicate-key error) instead of overwriting it. The folder then reads again and
applies the batch again; the documents already written hold the events in ``_applied`` and are
left as they are. Two replicas, a redelivery and a crash all end with the same documents.

The result tells, per event, the documents before and after it, so the service's handlers can
react (publish, call a CRM) without reading anything again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel
from pymongo import DeleteOne, ReplaceOne
from pymongo.errors import BulkWriteError

from contracts.registry import DecodedEvent
from services.common.logging import get_logger
from services.common.store import (
    APPLIED_FIELD,
    APPLIED_WINDOW,
    Collections,
    Document,
    only_duplicate_keys,
)

__all__ = [
    "VERSION_FIELD",
    "Applied",
    "BatchFolder",
    "DocRef",
    "Docs",
    "Event",
    "ReadModel",
    "WriteConflictError",
]

log = get_logger(__name__)

VERSION_FIELD = "_v"
Event = DecodedEvent[BaseModel]


@dataclass(frozen=True, order=True)
class DocRef:
    """One document of a read model: its collection and ``_id``."""

    collection: str
    id: str


Docs = Mapping[DocRef, Document | None]
"""Documents by reference; None: the document does not exist (or is to be deleted)."""


class ReadModel(Protocol):
    """A service's read model, as the batch pipeline folds it."""

    def refs(self, event: Event, docs: Docs) -> Sequence[DocRef]:
        """The documents ``event`` reads or changes (none: the event does not concern it).

        ``docs`` holds the documents loaded so far, as the batch's earlier events left them.
        Documents named by other documents (a subject's leads) are found there: name the first
        one; while it is not in ``docs``, the folder loads it and asks again.
        """
        ...

    def apply(self, docs: Docs, event: Event) -> Mapping[DocRef, Document | None]:
        """The documents of ``docs`` (those :meth:`refs` named) that ``event`` changes, as
        they are after it (None deletes). Pure: must not mutate ``docs`` or do any I/O."""
        ...


@dataclass(frozen=True)
class Applied:
    """One event of a folded batch, with the documents it touched before and after it."""

    event: Event
    before: Docs
    after: Docs
    changed: bool
    """False when the event changed nothing: a redelivery, or an event of no effect."""

    def doc(self, ref: DocRef) -> Document | None:
        return self.after.get(ref)


class WriteConflictError(RuntimeError):
    """The documents kept changing under the folder (never happens with one writer each)."""


def _version(document: Document | None) -> int | None:
    return None if document is None else document.get(VERSION_FIELD)


def _has_applied(document: Document | None, event_id: str) -> bool:
    return document is not None and event_id in document.get(APPLIED_FIELD, ())


def _stamped(ref: DocRef, document: Document, prior: Document | None, event_id: str) -> Document:
    """``document`` as written after ``prior``: its ``_id``, the next version, ``event_id``
    joining the window of applied events."""
    window = [*((prior or {}).get(APPLIED_FIELD) or ()), event_id][-APPLIED_WINDOW:]
    version = (_version(prior) or 0) + 1
    return {**document, "_id": ref.id, VERSION_FIELD: version, APPLIED_FIELD: window}


class BatchFolder:
    """Folds batches of events into a :class:`ReadModel`'s documents in ``db``."""

    def __init__(self, db: Collections, model: ReadModel, *, max_conflicts: int = 8) -> None:
        self.db = db
        self.model = model
        self.max_conflicts = max_conflicts

    async def fold(
        self, events: Sequence[Event], *, seeded: Mapping[DocRef, Document | None] | None = None
    ) -> list[Applied]:
        """Apply ``events`` in order; returns what each did. Raises the store's errors and,
        after ``max_conflicts`` lost races in a row, :class:`WriteConflictError`.

        ``seeded``: documents the caller found by a query (not by id: a tenant's active legal
        holds), as loaded; :meth:`ReadModel.refs` sees them in ``docs`` from the first event
        on. After a lost race they are read again by id, like every loaded document."""
        loaded: dict[DocRef, Document | None] = dict(seeded or {})
        conflicts = 0
        while True:
            state = dict(loaded)
            applied, missing = self.run(state, events)
            if missing:
                loaded.update(await self.load(missing))
                continue
            if await self.write(loaded, state, _changed_order(applied)):
                return applied
            conflicts += 1
            if conflicts >= self.max_conflicts:
                raise WriteConflictError(f"{len(events)} events lost {conflicts} races in a row")
            log.info("read model changed meanwhile; folding the batch again", events=len(events))
            loaded = await self.load(set(loaded))

    def run(
        self, state: dict[DocRef, Document | None], events: Sequence[Event]
    ) -> tuple[list[Applied], set[DocRef]]:
        """Apply ``events`` to ``state`` until one names a document not loaded; then only
        collect what the rest name. Returns what was applied and what is missing."""
        applied: list[Applied] = []
        missing: set[DocRef] = set()
        for event in events:
            touched = tuple(self.model.refs(event, state))
            absent = {ref for ref in touched if ref not in state}
            missing |= absent
            if not missing:
                applied.append(self.step(state, event, touched))
        return applied, missing

    def step(
        self, state: dict[DocRef, Document | None], event: Event, touched: tuple[DocRef, ...]
    ) -> Applied:
        before = {ref: state[ref] for ref in touched}
        if not touched:
            return Applied(event, before, before, changed=False)
        event_id = event.envelope.id
        changes = {
            ref: document
            for ref, document in self.model.apply(before, event).items()
            if ref in before and not _has_applied(before[ref], event_id)
        }
        for ref, document in changes.items():
            state[ref] = (
                None if document is None else _stamped(ref, document, before[ref], event_id)
            )
        return Applied(event, before, {ref: state[ref] for ref in touched}, bool(changes))

    async def load(self, refs: set[DocRef]) -> dict[DocRef, Document | None]:
        """Every document of ``refs``, one ``find`` per collection (None: missing)."""
        ids: dict[str, list[str]] = defaultdict(list)
        for ref in refs:
            ids[ref.collection].append(ref.id)
        found: dict[DocRef, Document | None] = dict.fromkeys(refs)
        for collection, wanted in ids.items():
            async for document in self.db[collection].find({"_id": {"$in": wanted}}):
                found[DocRef(collection, document["_id"])] = document
        return found

    async def write(
        self,
        base: Mapping[DocRef, Document | None],
        state: Mapping[DocRef, Document | None],
        order: Sequence[str] = (),
    ) -> bool:
        """Write what changed from ``base`` to ``state``, each write conditional on the version
        read; False when another writer got there first (nothing after that write was sent)."""
        # Collections in ``order``, the order the batch first changed them (as the changing
        # event names them in ``refs``): readers of several collections see them change in
        # that order (lead-ingest's subject before the request an objection answers), as the
        # documents are written one collection after the other.
        writes: dict[str, list[Any]] = {name: [] for name in order}
        deletes: dict[str, int] = defaultdict(int)
        for ref in sorted(state):
            document, read = state[ref], base[ref]
            if document is read:
                continue
            version = _version(read)
            expected = {VERSION_FIELD: version if version is not None else {"$exists": False}}
            writes.setdefault(ref.collection, [])
            if document is None:
                writes[ref.collection].append(DeleteOne({"_id": ref.id, **expected}))
                deletes[ref.collection] += 1
            else:
                writes[ref.collection].append(
                    ReplaceOne({"_id": ref.id, **expected}, document, upsert=True)
                )
        for collection, operations in writes.items():
            if not operations:
                continue
            try:
                result = await self.db[collection].bulk_write(operations, ordered=True)
            except BulkWriteError as error:
                if error.details.get("writeErrors") and only_duplicate_keys(error):
                    return False
                raise
            if result.deleted_count != deletes[collection]:
                return False
        return True


def _changed_order(applied: Sequence[Applied]) -> list[str]:
    """The collections a folded batch changed, in the order it first changed each (within
    one event, the order its ``refs`` named them)."""
    order: dict[str, None] = {}
    for step in applied:
        for ref, document in step.after.items():
            if document is not step.before[ref]:
                order.setdefault(ref.collection, None)
    return list(order)
