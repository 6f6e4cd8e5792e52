"""Writes to one document from many connections at once are atomic, as on MongoDB.

The batch pipeline's exactly-once rests on it (services/common/pipeline.py): of several writes
conditional on the version they read, one wins and the others fail with a duplicate key, so
none silently undoes another; and a read sees a document either before or after a write,
never half written (a half-written read pairs a new version with old facts, and a write
conditional on that version then silently drops the facts it never saw).
mongo-java-server handles connections on several threads; this is the proof that its writes
to one document still do not interleave with each other or with reads.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.common.store import only_duplicate_keys

pytestmark = pytest.mark.integration

Doc = dict[str, Any]
WRITERS = 16
ROUNDS = 40
WRITES = 2_000


async def test_concurrent_increments_of_one_document_all_count(
    db: AsyncDatabase[Doc], mongo_url: str
) -> None:
    clients = [AsyncMongoClient[Doc](mongo_url, timeoutMS=20_000) for _ in range(WRITERS)]
    try:
        collections = [client[db.name]["counters"] for client in clients]
        await collections[0].insert_one({"_id": "c", "n": 0})

        async def bump(n: int) -> None:
            for _ in range(ROUNDS):
                await collections[n].update_one({"_id": "c"}, {"$inc": {"n": 1}})

        await asyncio.gather(*(bump(n) for n in range(WRITERS)))
        document = await collections[0].find_one({"_id": "c"})
        assert document is not None
        assert document["n"] == WRITERS * ROUNDS, "no increment lost"
    finally:
        for client in clients:
            await client.close()


async def test_of_concurrent_writes_conditional_on_one_version_exactly_one_wins(
    db: AsyncDatabase[Doc], mongo_url: str
) -> None:
    clients = [AsyncMongoClient[Doc](mongo_url, timeoutMS=20_000) for _ in range(WRITERS)]
    try:
        collections = [client[db.name]["versioned"] for client in clients]
        for version in range(ROUNDS):

            async def write(n: int, version: int = version) -> bool | None:
                """True: won; False: lost with a duplicate key; None: another error."""
                expected = {"_v": version} if version else {"_v": {"$exists": False}}
                replace = ReplaceOne(
                    {"_id": "d", **expected}, {"_v": version + 1, "writer": n}, upsert=True
                )
                try:
                    await collections[n].bulk_write([replace], ordered=True)
                except BulkWriteError as error:
                    return False if only_duplicate_keys(error) else None
                return True

            won = await asyncio.gather(*(write(n) for n in range(WRITERS)))
            assert None not in won, "a lost race is a duplicate key, nothing else"
            assert won.count(True) == 1, f"version {version}: {won.count(True)} writers won"
            document = await collections[0].find_one({"_id": "d"})
            assert document is not None
            assert document["_v"] == version + 1
            assert document["writer"] == won.index(True)
    finally:
        for client in clients:
            await client.close()


async def test_a_read_never_sees_a_replace_half_done(
    db: AsyncDatabase[Doc], mongo_url: str
) -> None:
    """One writer replaces a document over and over, its facts always as many as its version;
    readers on other connections read it meanwhile and must never see the two disagree."""
    readers = 4
    clients = [AsyncMongoClient[Doc](mongo_url, timeoutMS=20_000) for _ in range(readers + 1)]
    try:
        writer, *reading = (client[db.name]["replaced"] for client in clients)
        await writer.insert_one({"_id": "d", "facts": [], "version": 0})
        done = asyncio.Event()
        torn: list[tuple[int, int]] = []
        reads = 0

        async def write() -> None:
            try:
                for step in range(WRITES):
                    version = step % 100  # the facts stay a few kilobytes
                    facts = [{"n": n, "note": "x" * 40} for n in range(version + 1)]
                    replaced = await writer.replace_one(
                        {"_id": "d"}, {"facts": facts, "version": version + 1}
                    )
                    assert replaced.matched_count == 1
            finally:
                done.set()

        async def read(collection: Any) -> None:
            nonlocal reads
            while not done.is_set():
                document = await collection.find_one({"_id": "d"})
                assert document is not None
                reads += 1
                if len(document["facts"]) != document["version"]:
                    torn.append((len(document["facts"]), document["version"]))

        await asyncio.gather(write(), *(read(collection) for collection in reading))
        assert reads > WRITES, "the readers ran alongside the writer"
        assert not torn, f"{len(torn)} of {reads} reads saw (facts, version) disagree: {torn[:5]}"
    finally:
        for client in clients:
            await client.close()
