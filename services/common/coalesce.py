"""Concurrent reads by ``_id`` coalesced into one ``find({_id: {$in: ...}})`` (issue 14).

An API route that reads a document by id (lead-ingest's lead and subject on every
interaction, score review or privacy request) made one store round trip per request. Under
load, many requests wait for such a read at the same moment: :class:`ByIdReader` queues them
and answers them together. The first request of a quiet moment is read at once, alone; the
requests that arrive while a read is under way wait for it to finish and then share the next
read, so every request is answered by a read that began after it was made (a caller that just
wrote a document reads its write).

A caller that gives up (its deadline) leaves the read to finish for the others; a store error
reaches every caller of that read, and the next read starts afresh. The store calls carry the
store deadline (PyMongo's ``timeoutMS``).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Protocol

from services.common.store import Document

__all__ = ["ByIdReader", "mark_heard"]


class _Finds(Protocol):
    def find(self, filter: Document) -> Any: ...


class ByIdReader:
    """Reads documents of one collection by ``_id``, coalescing concurrent reads."""

    def __init__(self, collection: _Finds, *, max_batch: int = 500) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._collection = collection
        self._max_batch = max_batch
        self._waiting: list[tuple[Any, asyncio.Future[Document | None]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.reads = 0
        """``find`` commands sent (tests read it)."""

    async def get(self, document_id: Any) -> Document | None:
        """The document with this ``_id``, or None."""
        answer: asyncio.Future[Document | None] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(mark_heard)
        self._waiting.append((document_id, answer))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="by-id reader")
        return await asyncio.shield(answer)

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                found = await self._read(list(dict.fromkeys(key for key, _ in batch)))
            except asyncio.CancelledError:
                for _, answer in batch + self._waiting:
                    answer.cancel()
                self._waiting.clear()
                raise
            except Exception as error:  # the store failed: every caller of this read hears it
                for _, answer in batch:
                    if not answer.done():
                        answer.set_exception(error)
                continue
            handed: set[Any] = set()
            for key, answer in batch:
                document = found.get(key)
                if document is not None and key in handed:
                    document = copy.deepcopy(document)  # two callers never share one dict
                handed.add(key)
                if not answer.done():
                    answer.set_result(document)

    async def _read(self, keys: list[Any]) -> dict[Any, Document]:
        self.reads += 1
        return {
            document["_id"]: document
            async for document in self._collection.find({"_id": {"$in": keys}})
        }


def mark_heard(answer: asyncio.Future[Any]) -> None:
    """Mark a failed answer as heard: its caller may have given up (a deadline) meanwhile,
    and asyncio would log the unheard exception at garbage collection."""
    if not answer.cancelled():
        answer.exception()
