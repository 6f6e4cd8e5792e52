"""The local store keeps what it acknowledged when it is killed, and its waits are bounded."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import PyMongoError

from tests.infra import ServerControl

pytestmark = pytest.mark.integration

Doc = dict[str, Any]


async def test_acknowledged_writes_survive_kill_9(
    mongo_url: str, mongo_control: ServerControl
) -> None:
    name = f"it_store_{uuid.uuid4().hex[:12]}"
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_url, timeoutMS=20_000)
    try:
        leads = client[name]["leads"]
        for i in range(500):
            await leads.insert_one({"_id": f"l{i}", "n": i})
        for _ in range(100):
            await leads.update_one({"_id": "l0"}, {"$inc": {"increments": 1}})
        await leads.bulk_write(
            [UpdateOne({"_id": f"b{i}"}, {"$set": {"n": i}}, upsert=True) for i in range(200)]
        )
    finally:
        await client.close()

    # At once after the last acknowledgement: no background commit can have caught up.
    await mongo_control.astop(graceful=False)
    await mongo_control.astart()

    client = AsyncMongoClient(mongo_url, timeoutMS=20_000)
    try:
        leads = client[name]["leads"]
        assert await leads.count_documents({}) == 700
        assert await leads.find_one({"_id": "l0"}) == {"_id": "l0", "n": 0, "increments": 100}
        await client.drop_database(name)
    finally:
        await client.close()


async def test_an_operation_on_a_frozen_store_fails_within_its_deadline(
    mongo_url: str, mongo_control: ServerControl
) -> None:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_url, timeoutMS=1_000)
    try:
        await client.admin.command("ping")
        mongo_control.freeze()
        # The client's own deadline ends the wait; asyncio's far longer one only catches a hang
        # (a TimeoutError, which is no PyMongoError, fails the test).
        with pytest.raises(PyMongoError):
            await asyncio.wait_for(client["it_store_frozen"]["leads"].find_one({"_id": "l1"}), 30)
        mongo_control.thaw()
        # It answers again by itself once thawed, on the same client.
        await asyncio.wait_for(client.admin.command("ping"), 10)
    finally:
        mongo_control.thaw()
        await client.close()
