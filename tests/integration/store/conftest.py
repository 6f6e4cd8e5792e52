"""A fresh database per test on whichever store the session fixtures started."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]


@pytest.fixture
async def store_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_url, tz_aware=True, timeoutMS=20_000)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def db(store_client: AsyncMongoClient[Doc]) -> AsyncIterator[AsyncDatabase[Doc]]:
    name = f"it_store_{uuid.uuid4().hex[:12]}"
    yield store_client[name]
    await store_client.drop_database(name)
