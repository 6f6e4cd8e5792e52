"""MongoDB access through PyMongo's async API, and idempotent projection writes.

The stores must work on MongoDB and on FerretDB 1.x, which has no multi-document transactions,
change streams or TTL indexes. So every projection update is a single-document write that
records the event id it applies (:func:`apply_once`), which makes redelivery and restarts
harmless.

FerretDB 1.x (SQLite) pushes only a bare ``_id`` filter down to storage: ``{"_id": x, "f": y}``
reads the whole collection, so one conditional write costs O(collection). There the guard is a
read and a write, both by bare ``_id``; on MongoDB it stays one atomic conditional write.
"""

from __future__ import annotations

import weakref
import zlib
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.common.settings import CommonSettings

__all__ = [
    "APPLIED_FIELD",
    "APPLIED_WINDOW",
    "Collections",
    "Document",
    "Suffixed",
    "apply_once",
    "find_owned",
    "make_mongo_client",
    "update_if",
]

Document = dict[str, Any]

APPLIED_FIELD = "_applied"
APPLIED_WINDOW = 200
"""How many recent event ids a projection document remembers, at least. Redeliveries come from
the last uncommitted batch, far fewer than this; full replays write into fresh collections."""
TRIM_EVERY = 16
"""Trim the window on about one applied event in this many (by event id), not on every one."""


class Collections(Protocol):
    """Where a store finds its collections by their fixed names: an ``AsyncDatabase`` (live)
    or :class:`Suffixed` (a rebuild by ``leadtrail replay`` into fresh collections)."""

    def __getitem__(self, name: str, /) -> AsyncCollection[Document]: ...


class Suffixed:
    """Every collection ``name`` of ``db`` as ``<name>_<suffix>``.

    A store built over this never sees a live collection, so whatever it writes lands beside
    the live data, never in it.
    """

    def __init__(self, db: AsyncDatabase[Document], suffix: str) -> None:
        self.db = db
        self.suffix = suffix

    def name(self, name: str) -> str:
        return f"{name}_{self.suffix}"

    def __getitem__(self, name: str, /) -> AsyncCollection[Document]:
        return self.db[self.name(name)]


def make_mongo_client(settings: CommonSettings, *, app_name: str) -> AsyncMongoClient[Document]:
    """A client that connects lazily (nothing happens at construction)."""
    return AsyncMongoClient(
        settings.mongo_url,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=10_000,
        connect=False,
    )


def database(
    client: AsyncMongoClient[Document], settings: CommonSettings
) -> AsyncDatabase[Document]:
    return client[settings.mongo_db]


_FILTERS_ONLY_BY_ID: weakref.WeakKeyDictionary[AsyncMongoClient[Document], bool] = (
    weakref.WeakKeyDictionary()
)


async def filters_only_by_id(collection: AsyncCollection[Document]) -> bool:
    """Whether the server answers a filter beyond a bare ``_id`` by scanning (FerretDB 1.x);
    asked once per client."""
    client = collection.database.client
    known = _FILTERS_ONLY_BY_ID.get(client)
    if known is None:
        info = await client.admin.command("buildInfo")
        known = "ferretdbVersion" in info and str(info["ferretdbVersion"]).startswith("v1.")
        _FILTERS_ONLY_BY_ID[client] = known
    return known


async def apply_once(
    collection: AsyncCollection[Document],
    document_id: str,
    event_id: str,
    update: dict[str, Any],
) -> bool:
    """Apply ``update`` to the document unless it already applied ``event_id``.

    Returns True when this call changed the document. Creates the document when it does not
    exist. On MongoDB the guard and the write are one atomic single-document operation, safe
    even against two deliveries of the event at the same moment. On FerretDB 1.x they are a
    read then a write by ``_id`` (see the module docstring): redeliveries and replays are
    still harmless, because one consumer per partition handles a subject's events one at a
    time; two deliveries racing each other would need two consumers on one partition at once.
    """
    guarded = dict(update)
    push = dict(guarded.get("$push", {}))
    push[APPLIED_FIELD] = event_id
    guarded["$push"] = push
    if await filters_only_by_id(collection):
        current = await collection.find_one({"_id": document_id}, {APPLIED_FIELD: 1})
        if current is not None and event_id in current.get(APPLIED_FIELD, []):
            return False
        condition: dict[str, Any] = {"_id": document_id}
    else:
        condition = {"_id": document_id, APPLIED_FIELD: {"$ne": event_id}}
    try:
        result = await collection.update_one(condition, guarded, upsert=True)
    except DuplicateKeyError:
        # The document exists and already holds event_id, so the filter did not match and the
        # upsert tried to insert a second document with the same _id.
        return False
    changed = result.upserted_id is not None or result.modified_count == 1
    if changed and zlib.crc32(event_id.encode()) % TRIM_EVERY == 0:
        # Keep the window bounded. `$push` with `$slice` would do it in the same write on
        # MongoDB, but FerretDB 1.x ignores `$slice`; so now and then the oldest ids beyond
        # the window are dropped in one extra write (every write counts on FerretDB). FerretDB
        # 1.x ignores `$pull` with `$in` too; `$pullAll` works on both.
        document = await collection.find_one({"_id": document_id}, {APPLIED_FIELD: 1})
        applied = (document or {}).get(APPLIED_FIELD, [])
        if len(applied) > APPLIED_WINDOW:
            await collection.update_one(
                {"_id": document_id},
                {"$pullAll": {APPLIED_FIELD: applied[: len(applied) - APPLIED_WINDOW]}},
            )
    return changed


async def update_if(
    collection: AsyncCollection[Document],
    document_id: str,
    expected: dict[str, Any],
    update: dict[str, Any],
) -> bool:
    """Apply ``update`` to the document ``document_id`` only if its fields equal ``expected``
    (it was not changed since it was read); True when it matched.

    MongoDB: one conditional write. FerretDB 1.x: a read and a write by ``_id``, since a filter
    beyond a bare ``_id`` scans the whole collection there. Callers hold the subject's lock
    (:mod:`services.common.locks`), so nothing in this process changes the document in
    between; on FerretDB each service runs one replica (see that module).
    """
    if await filters_only_by_id(collection):
        current = await collection.find_one({"_id": document_id})
        if current is None or any(current.get(k) != v for k, v in expected.items()):
            return False
        result = await collection.update_one({"_id": document_id}, update)
    else:
        result = await collection.update_one({"_id": document_id, **expected}, update)
    return result.matched_count == 1


async def find_owned(
    collection: AsyncCollection[Document], document_id: str, tenant_id: str
) -> Document | None:
    """The document with this ``_id`` if it belongs to ``tenant_id``, else None.

    Looked up by ``_id`` alone, then checked: FerretDB 1.x pushes only a bare ``_id`` filter
    down to its storage; any other field makes the query a collection scan.
    """
    document = await collection.find_one({"_id": document_id})
    if document is None or document.get("tenant_id") != tenant_id:
        return None
    return document
