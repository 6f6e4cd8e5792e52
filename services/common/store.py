"""MongoDB access through PyMongo's async API, and idempotent projection writes.

The stores must work on MongoDB and on the local mongo-java-server, which has no
multi-document transactions, change streams or TTL indexes. So every projection update is a
single-document write that records the event id it applies (:func:`apply_once`), which makes
redelivery and restarts harmless. Every operation has a deadline (``timeoutMS``, see
:func:`make_mongo_client`), so a slow or wedged store becomes an error, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import AsyncMongoClient, UpdateOne, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.common.settings import CommonSettings

__all__ = [
    "APPLIED_FIELD",
    "APPLIED_WINDOW",
    "DUPLICATE_KEY",
    "Collections",
    "CommandCounter",
    "Document",
    "Suffixed",
    "apply_once",
    "aware",
    "find_owned",
    "insert_new",
    "make_mongo_client",
    "only_duplicate_keys",
    "update_if",
]

Document = dict[str, Any]

APPLIED_FIELD = "_applied"
APPLIED_WINDOW = 200
"""How many recent event ids a projection document remembers, at least. Redeliveries come from
the last uncommitted batch, far fewer than this; full replays write into fresh collections."""


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


class CommandCounter(monitoring.CommandListener):
    """Tells ``count(command, collection)`` of every command the client sends: one call per
    round trip to the store (a retried command is sent, and counted, again).

    ``collection`` is the collection the command names (``find``, ``insert``, ``update``,
    ``getMore``, ``createIndexes``...), or ``""`` for a command on no collection (``ping``,
    ``endSessions``). Collection names are chosen by the code, so the set stays closed.
    Called synchronously by PyMongo before the command goes out: it must stay cheap.
    """

    def __init__(self, count: Callable[[str, str], None]) -> None:
        self._count = count

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        target = event.command.get("collection" if name == "getMore" else name)
        self._count(name, target if isinstance(target, str) else "")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def make_mongo_client(
    settings: CommonSettings,
    *,
    app_name: str,
    listeners: Sequence[monitoring.CommandListener] = (),
) -> AsyncMongoClient[Document]:
    """A client that connects lazily (nothing happens at construction).

    ``timeoutMS`` bounds every operation as a whole (server selection, connecting, waiting
    for a pooled connection, the server's answer and retries): a store that is down, slow or
    frozen raises a ``PyMongoError`` after ``store_timeout_s`` instead of hanging the caller.
    ``listeners`` see every command the client sends (a service counts them:
    :class:`CommandCounter`).
    """
    timeout_ms = int(settings.store_timeout_s * 1000)
    return AsyncMongoClient(
        settings.mongo_url,
        appname=app_name,
        tz_aware=True,
        timeoutMS=timeout_ms,
        serverSelectionTimeoutMS=timeout_ms,
        connect=False,
        event_listeners=list(listeners),
    )


def database(
    client: AsyncMongoClient[Document], settings: CommonSettings
) -> AsyncDatabase[Document]:
    return client[settings.mongo_db]


DUPLICATE_KEY = 11000
"""The server's code for a write that collided on a unique key."""


def only_duplicate_keys(error: BulkWriteError) -> bool:
    """Whether every write a bulk write refused was refused for a duplicate key."""
    return all(e.get("code") == DUPLICATE_KEY for e in error.details.get("writeErrors", ()))


async def insert_new(
    collection: AsyncCollection[Document], documents: dict[str, Document]
) -> set[str]:
    """Insert each of ``documents`` (by ``_id``) unless it exists, with one unordered
    ``bulk_write`` of upserts that only insert; returns the ``_id``s inserted now. One that
    existed, or that a concurrent writer inserted first (a duplicate key), was not; any other
    error is raised."""
    if not documents:
        return set()
    writes = [
        UpdateOne({"_id": document_id}, {"$setOnInsert": document}, upsert=True)
        for document_id, document in documents.items()
    ]
    try:
        result = await collection.bulk_write(writes, ordered=False)
    except BulkWriteError as error:
        if not only_duplicate_keys(error):
            raise
        return {str(item["_id"]) for item in error.details.get("upserted", [])}
    return {str(document_id) for document_id in (result.upserted_ids or {}).values()}


def aware(moment: datetime) -> datetime:
    """A date read back from a store, as an aware UTC date (the in-memory store of
    ``leadtrail replay`` hands them back naive), so that dates compare."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def apply_once(
    collection: AsyncCollection[Document],
    document_id: str,
    event_id: str,
    update: dict[str, Any],
) -> bool:
    """Apply ``update`` to the document unless it already applied ``event_id``.

    Returns True when this call changed the document. Creates the document when it does not
    exist. The guard and the write are one atomic single-document operation, safe even against
    two deliveries of the event at the same moment; the event id joins a window of the
    :data:`APPLIED_WINDOW` most recent ones in the same write.
    """
    guarded = dict(update)
    push = dict(guarded.get("$push", {}))
    push[APPLIED_FIELD] = {"$each": [event_id], "$slice": -APPLIED_WINDOW}
    guarded["$push"] = push
    try:
        result = await collection.update_one(
            {"_id": document_id, APPLIED_FIELD: {"$ne": event_id}}, guarded, upsert=True
        )
    except DuplicateKeyError:
        # The document exists and already holds event_id, so the filter did not match and the
        # upsert tried to insert a second document with the same _id.
        return False
    return result.upserted_id is not None or result.modified_count == 1


async def update_if(
    collection: AsyncCollection[Document],
    document_id: str,
    expected: dict[str, Any],
    update: dict[str, Any],
) -> bool:
    """Apply ``update`` to the document ``document_id`` only if its fields equal ``expected``
    (it was not changed since it was read); True when it matched. One conditional write."""
    result = await collection.update_one({"_id": document_id, **expected}, update)
    return result.matched_count == 1


async def find_owned(
    collection: AsyncCollection[Document], document_id: str, tenant_id: str
) -> Document | None:
    """The document with this ``_id`` if it belongs to ``tenant_id``, else None.

    Looked up by ``_id`` alone, then checked, so a document of another tenant and a missing one
    look the same to the caller.
    """
    document = await collection.find_one({"_id": document_id})
    if document is None or document.get("tenant_id") != tenant_id:
        return None
    return document
