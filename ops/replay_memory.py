"""The collections a rebuild folds events into: in memory, then written out once, in bulk.

Why: a rebuild applies every event of the log, one read and one write by ``_id`` each, and
FerretDB 1.x answers each in milliseconds (a round trip, a statement, a commit), so a rebuild
straight into the database ran at tens of events per second. The final documents are few
compared with the events (a lead's five events make one lead), and ``insert_many`` writes tens
of thousands of documents a second. So the events go into :class:`MemoryCollections` and only
the result is written (:func:`write_out`).

The very same ``apply`` code runs, live and here: it calls PyMongo's async collection API, and
:class:`MemoryCollection` answers that part of it (``find_one``, ``find``, ``update_one``...)
with mongomock, which implements MongoDB's query and update language (filters, ``$set``,
``$setOnInsert``, ``$min``, ``$push``, ``$pullAll``, upserts, BSON's millisecond dates) so it
is not reimplemented here. Two things are added, for the two operations the batch pipeline
makes per batch (profiled, mongomock's general path was half of a rebuild's time):

- mongomock answers every query by scanning the collection, so a filter on a plain ``_id`` is
  looked up directly (:class:`_IdLookupCollection`), and the pipeline's load (``find`` with
  only ``{_id: {$in: ...}}``) returns the stored documents as PyMongo would (copied, dates
  UTC-aware) without mongomock's cursor;
- the pipeline's version-conditional ``ReplaceOne``/``DeleteOne`` (``{_id, version}``, see
  :meth:`services.common.pipeline.BatchFolder.write`) are applied to the stored documents
  directly, with the same results: a lost race is a duplicate key, dates are stored as
  mongomock stores them (naive UTC, milliseconds).

Memory grows with the rebuilt read models (not with the events): a lead document takes a few
kilobytes of Python objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, cast

import mongomock
from bson.tz_util import utc
from mongomock import filtering
from pymongo import DeleteOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from pymongo.results import BulkWriteResult

from services.common.store import DUPLICATE_KEY, Document

__all__ = ["MemoryCollection", "MemoryCollections", "load", "write_out"]

WRITE_CHUNK = 1000
"""Documents per ``insert_many``: large enough to amortise the round trip, small enough for
one message (16 MB) whatever the documents."""


_MongomockCollection: Any = mongomock.Collection  # its partial annotations do not fit strict mypy
_filter_applies: Callable[[Any, Document], bool] = filtering.filter_applies


class _IdLookupCollection(_MongomockCollection):  # type: ignore[misc]
    """mongomock's collection, with a filter on a plain ``_id`` answered by a dict lookup."""

    def _iter_documents(self, filter: Any) -> Iterator[Document]:
        key = filter.get("_id") if isinstance(filter, dict) else None
        if isinstance(key, dict) and set(key) == {"$in"}:
            keys: Iterable[Any] = key["$in"]  # the batch pipeline's load
        elif isinstance(key, str | int):
            keys = (key,)
        else:
            return cast("Iterator[Document]", super()._iter_documents(filter))
        store = self._store
        found = (store[k] for k in dict.fromkeys(keys) if isinstance(k, str | int) and k in store)
        return iter([document for document in found if _filter_applies(filter, document)])


_ABSENT = object()
_UTC = utc  # the tzinfo mongomock gives the dates it returns (bson's)


def _is_key(key: Any) -> bool:
    return isinstance(key, str | int) and not isinstance(key, bool)


def _only_ids(filter: Document | None) -> list[Any] | None:
    """The ids of a filter that is exactly ``{_id: {$in: [...]}}``, else None."""
    if not filter or set(filter) != {"_id"}:
        return None
    condition = filter["_id"]
    if isinstance(condition, dict) and set(condition) == {"$in"}:
        return list(condition["$in"])
    return None


def _versioned(filter: Document) -> tuple[Any, str, Any] | None:
    """``(id, field, expected value or _ABSENT)`` of a filter ``{_id: id, field: value}`` or
    ``{_id: id, field: {$exists: false}}`` with plain values; else None."""
    if len(filter) != 2 or not _is_key(filter.get("_id")):
        return None
    ((field, expected),) = ((k, v) for k, v in filter.items() if k != "_id")
    if isinstance(expected, dict):
        if expected != {"$exists": False}:
            return None
        return filter["_id"], field, _ABSENT
    if not isinstance(expected, int | str) or isinstance(expected, bool):
        return None
    return filter["_id"], field, expected


_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
"""Types kept as they are (checked first: most of a document's values are these)."""


def _copy(value: Any, date: Callable[[datetime], datetime]) -> Any:
    """A copy of a document's value, every date in it passed through ``date``."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict or isinstance(value, dict):
        return {key: _copy(item, date) for key, item in value.items()}
    if kind is list or isinstance(value, list | tuple):
        return [_copy(item, date) for item in value]
    if isinstance(value, datetime):
        return date(value)
    return value


def _stored_date(value: datetime) -> datetime:
    """As BSON keeps a date, and mongomock stores it: naive UTC, millisecond precision."""
    milliseconds = value.microsecond // 1000 * 1000
    if value.tzinfo is not None:
        value = (value - cast("timedelta", value.utcoffset())).replace(tzinfo=None)
    return value.replace(microsecond=milliseconds)


def _as_stored(value: Any) -> Any:
    """A copy as mongomock stores it."""
    return _copy(value, _stored_date)


def _as_read(value: Any) -> Any:
    """A copy as mongomock returns it with ``tz_aware=True``."""
    return _copy(value, lambda date: date.replace(tzinfo=_UTC))


class _Cursor:
    """The async face of a finished query: ``async for`` and ``to_list``, as PyMongo's."""

    def __init__(self, documents: list[Document]) -> None:
        self._documents = documents

    def __aiter__(self) -> AsyncIterator[Document]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Document]:
        for document in self._documents:
            yield document

    async def to_list(self, length: int | None = None) -> list[Document]:
        return self._documents if not length else self._documents[:length]


class _Admin:
    async def command(self, name: str, *args: Any, **kwargs: Any) -> Document:
        """``buildInfo`` is what the stores ask (``filters_only_by_id``): this is no FerretDB."""
        if name != "buildInfo":
            raise NotImplementedError(f"{name} on in-memory collections")
        return {"version": "in-memory (mongomock)"}


class _Client:
    def __init__(self) -> None:
        self.admin = _Admin()


class _Database:
    def __init__(self, client: _Client) -> None:
        self.client = client


class MemoryCollection:
    """The part of ``AsyncCollection`` the projections use, over one in-memory collection.

    A method they do not use is missing on purpose: calling it fails loudly, and the rebuild
    reports the event as not applied.
    """

    def __init__(self, collection: _IdLookupCollection, database: _Database) -> None:
        self._collection = collection
        self.database = database
        self.name: str = collection.name

    async def find_one(self, filter: Document, *args: Any, **kwargs: Any) -> Document | None:
        return cast("Document | None", self._collection.find_one(filter, *args, **kwargs))

    def find(self, filter: Document | None = None, *args: Any, **kwargs: Any) -> _Cursor:
        ids = _only_ids(filter)
        if ids is not None and not args and not kwargs:
            store = self._collection._store
            found = [store[key] for key in dict.fromkeys(ids) if _is_key(key) and key in store]
            return _Cursor([_as_read(document) for document in found])
        return _Cursor(list(self._collection.find(filter, *args, **kwargs)))

    async def count_documents(self, filter: Document, **kwargs: Any) -> int:
        return int(self._collection.count_documents(filter, **kwargs))

    async def insert_one(self, document: Document, **kwargs: Any) -> Any:
        return self._collection.insert_one(document, **kwargs)

    async def update_one(self, filter: Document, update: Document, **kwargs: Any) -> Any:
        return self._collection.update_one(filter, update, **kwargs)

    async def update_many(self, filter: Document, update: Document, **kwargs: Any) -> Any:
        return self._collection.update_many(filter, update, **kwargs)

    async def find_one_and_update(
        self,
        filter: Document,
        update: Document,
        *args: Any,
        **kwargs: Any,
    ) -> Document | None:
        return cast(
            "Document | None", self._collection.find_one_and_update(filter, update, *args, **kwargs)
        )

    async def bulk_write(self, requests: Iterable[Any], ordered: bool = True) -> BulkWriteResult:
        """The batch pipeline's writes (``ReplaceOne`` and ``DeleteOne``), one after the other
        as an ordered bulk write would; the first duplicate key stops it, as there."""
        counts: dict[str, Any] = {"nMatched": 0, "nModified": 0, "nUpserted": 0, "nRemoved": 0}
        counts["upserted"] = upserted = []
        for index, request in enumerate(requests):
            filter: Document = request._filter
            if self._versioned_write(request, index, counts):
                continue
            if isinstance(request, ReplaceOne):
                try:
                    result = self._collection.replace_one(
                        filter, request._doc, upsert=bool(request._upsert)
                    )
                except mongomock.DuplicateKeyError as error:
                    failed = {"index": index, "code": DUPLICATE_KEY, "errmsg": str(error)}
                    raise BulkWriteError({"writeErrors": [failed]}) from error
                counts["nMatched"] += result.matched_count
                counts["nModified"] += result.modified_count
                if result.upserted_id is not None:
                    counts["nUpserted"] += 1
                    upserted.append({"index": index, "_id": result.upserted_id})
            elif isinstance(request, DeleteOne):
                counts["nRemoved"] += self._collection.delete_one(filter).deleted_count
            else:
                raise NotImplementedError(f"{type(request).__name__} in an in-memory bulk write")
        return BulkWriteResult(counts, acknowledged=True)

    def _versioned_write(self, request: Any, index: int, counts: dict[str, Any]) -> bool:
        """Apply a ``ReplaceOne``/``DeleteOne`` on ``{_id, field}`` (one plain value, or
        ``{$exists: false}``) to the stored documents directly; False for any other request."""
        condition = _versioned(request._filter)
        if condition is None or not isinstance(request, ReplaceOne | DeleteOne):
            return False
        key, field, expected = condition
        store = self._collection._store
        existing = store[key] if key in store else None  # noqa: SIM401 (a store has no get)
        matches = existing is not None and (
            field not in existing
            if expected is _ABSENT
            else existing.get(field, _ABSENT) == expected
        )
        if isinstance(request, DeleteOne):
            if matches:
                del store[key]
                counts["nRemoved"] += 1
            return True
        if matches:
            stored = _as_stored({"_id": key, **request._doc})
            counts["nMatched"] += 1
            counts["nModified"] += int(stored != existing)
            store[key] = stored
        elif existing is None and request._upsert:
            store[key] = _as_stored({"_id": key, **request._doc})
            counts["nUpserted"] += 1
            counts["upserted"].append({"index": index, "_id": key})
        elif existing is not None and request._upsert:  # the upsert's insert meets the _id
            failed = {"index": index, "code": DUPLICATE_KEY, "errmsg": f"duplicate key {key!r}"}
            raise BulkWriteError({"writeErrors": [failed]})
        return True

    async def delete_one(self, filter: Document, **kwargs: Any) -> Any:
        return self._collection.delete_one(filter, **kwargs)

    async def delete_many(self, filter: Document, **kwargs: Any) -> Any:
        return self._collection.delete_many(filter, **kwargs)

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        """Indexes belong to the written-out collections (built after the bulk load); in
        memory, every lookup the projections make by ``_id`` is direct already."""
        return "in-memory"

    def documents(self) -> list[Document]:
        """The stored documents themselves, to be written out as they are: not copied (a
        ``find`` would deep-copy each), dates as mongomock keeps them (naive UTC, which BSON
        encodes as UTC). Not to be changed by the caller."""
        return cast("list[Document]", list(self._collection._store.documents))

    async def load(self, documents: Iterable[Document]) -> None:
        batch = list(documents)
        if batch:
            self._collection.insert_many(batch)


class MemoryCollections:
    """A :class:`~services.common.store.Collections` in memory: the stores see collections by
    their usual names."""

    def __init__(self) -> None:
        self._database = _Database(_Client())
        self._db: Any = mongomock.MongoClient(tz_aware=True)["replay"]
        self._collections: dict[str, MemoryCollection] = {}

    def __getitem__(self, name: str, /) -> AsyncCollection[Document]:
        if name not in self._collections:
            collection = _IdLookupCollection(
                self._db, name=name, _db_store=self._db._store, codec_options=self._db.codec_options
            )
            self._collections[name] = MemoryCollection(collection, self._database)
        # Duck-typed: the stores are typed against PyMongo's collection; MemoryCollection has
        # the subset they call (see the class), which the replay equality tests exercise.
        return cast("AsyncCollection[Document]", self._collections[name])

    def collection(self, name: str) -> MemoryCollection:
        self[name]
        return self._collections[name]


async def load(
    memory: MemoryCollections, db: AsyncDatabase[Document], names: dict[str, str]
) -> int:
    """Copy the collections ``names`` (memory name -> database name) into memory; returns how
    many documents were loaded."""
    loaded = 0
    for name, source in names.items():
        documents = await db[source].find({}).to_list(None)
        await memory.collection(name).load(documents)
        loaded += len(documents)
    return loaded


async def write_out(
    memory: MemoryCollections,
    db: AsyncDatabase[Document],
    names: dict[str, str],
    on_written: Callable[[int], None] | None = None,
) -> int:
    """Replace each database collection of ``names`` (memory name -> database name) by the
    in-memory one: dropped, created (even empty) and filled in chunks. Returns the documents
    written; ``on_written(count)`` is told after each chunk."""
    written = 0
    for name, target in names.items():
        # pymongo's insert_many adds nothing to a document that has an `_id`, which all have.
        documents = memory.collection(name).documents()
        await db.drop_collection(target)
        await db.create_collection(target)
        for start in range(0, len(documents), WRITE_CHUNK):
            chunk = documents[start : start + WRITE_CHUNK]
            await db[target].insert_many(chunk, ordered=False)
            written += len(chunk)
            if on_written is not None:
                on_written(len(chunk))
    return written
