"""A store file written before documents were stored as BSON opens, migrated, with all its data.

``fixtures/java-serialized-store.mv`` was written by the local store as it was up to 99103d9
(documents and unique-index keys Java-serialized by MVStore's ``ObjectDataType``): ``python
tests/integration/store/test_store_format.py URL`` against such a store wrote :data:`LEADS`
and the indexes below, then the store was stopped with SIGTERM. The test starts today's store
on a copy of it, which migrates it first (``devstack.mongo_server``), and reads everything back
through the indexes.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient, MongoClient
from pymongo.errors import DuplicateKeyError

from devstack import mongo_server

pytestmark = pytest.mark.integration

Doc = dict[str, Any]
FIXTURE = Path(__file__).parent / "fixtures" / "java-serialized-store.mv"
DATABASE = "legacy"

LEADS: list[Doc] = [
    {
        "_id": f"lead_{i:03d}",
        "tenant_id": f"t{i % 3}",
        "subject_id": f"sub_{i % 7}",
        "email_index": f"bi_{i:03d}",
        "captured_at": datetime(2026, 11, 1, 9, i % 60, 0, 123000, tzinfo=UTC),
        "score": {"value": i / 4, "reasons": ["budget", "timeline"][: i % 3]},
        "version": i,
        "ref": ObjectId(f"{i:024x}"),
    }
    for i in range(120)
]


def write(url: str) -> None:
    """What wrote the fixture (against the store of 99103d9)."""
    client: MongoClient[Doc] = MongoClient(url, tz_aware=True)
    leads = client[DATABASE]["leads"]
    leads.create_index([("email_index", ASCENDING)], unique=True)
    leads.create_index([("tenant_id", ASCENDING), ("subject_id", ASCENDING)])
    leads.insert_many(LEADS)
    client[DATABASE]["empty"].create_index([("x", ASCENDING)], unique=True)
    client.close()


async def test_an_old_store_file_is_migrated_and_keeps_every_document_and_index(
    tmp_path: Path,
) -> None:
    (tmp_path / "data").mkdir()
    shutil.copy(FIXTURE, tmp_path / "data" / "store.mv")
    server = await asyncio.to_thread(mongo_server.start_mongo, tmp_path, timeout=120)
    client: AsyncMongoClient[Doc] = AsyncMongoClient(server.url, tz_aware=True, timeoutMS=20_000)
    try:
        leads = client[DATABASE]["leads"]
        assert await leads.find({}).sort("_id").to_list(None) == LEADS
        # by _id, by the unique index and by the secondary one
        assert await leads.find_one({"_id": "lead_042"}) == LEADS[42]
        assert await leads.find_one({"email_index": "bi_077"}) == LEADS[77]
        found = await leads.find({"tenant_id": "t1", "subject_id": "sub_3"}).to_list(None)
        expected = [d for d in LEADS if d["tenant_id"] == "t1" and d["subject_id"] == "sub_3"]
        assert sorted(d["_id"] for d in found) == [d["_id"] for d in expected]
        with pytest.raises(DuplicateKeyError):
            await leads.insert_one({"_id": "lead_new", "email_index": "bi_005"})
        with pytest.raises(DuplicateKeyError):
            await leads.insert_one({"_id": "lead_005"})
        await client[DATABASE]["empty"].insert_one({"_id": 1, "x": 1})
        with pytest.raises(DuplicateKeyError):
            await client[DATABASE]["empty"].insert_one({"_id": 2, "x": 1})
    finally:
        await client.close()
        await asyncio.to_thread(mongo_server.stop_mongo, tmp_path)
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == ["store-bson.mv"]


if __name__ == "__main__":
    write(sys.argv[1])
