"""An idle HTTP connection outlives the clients' own keep-alive (httpx and requests: 5 s).

uvicorn's default closes an idle connection after 5 s, the same as httpx keeps one. A client
reusing a connection at that moment sends on a socket the service is closing and gets a
connection reset (seen once as an `httpx.ReadError` in the round-trip budget test). The service
keeps idle connections for ``LEADTRAIL_HTTP_KEEP_ALIVE_S`` (65 s) instead, so the client is
always the one to let go first.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from contracts import ALL_TOPICS
from services.common.topics import ensure_topics
from tests.integration.lead_ingest.conftest import key
from tests.services_proc import ServiceProcess

pytestmark = pytest.mark.integration

IDLE_S = 6.0
"""Longer than uvicorn's default keep-alive (5 s), shorter than httpx's pool would keep it."""


def local_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


async def test_a_connection_idle_longer_than_five_seconds_is_still_open(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:10]
    await ensure_topics(kafka_bootstrap, f"it-{suffix}.", ALL_TOPICS)
    env = {
        "LEADTRAIL_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "LEADTRAIL_MONGO_URL": mongo_url,
        "LEADTRAIL_MONGO_DB": f"it_{suffix}",
        "LEADTRAIL_TOPIC_PREFIX": f"it-{suffix}.",
        "LEADTRAIL_KEK": key(),
        "LEADTRAIL_BLIND_INDEX_KEY": key(),
        "LEADTRAIL_CONFIG_DIR": str(tmp_path / "config"),
    }
    service = ServiceProcess("services.lead_ingest", env, tmp_path)
    try:
        await service.start()
        limits = httpx.Limits(keepalive_expiry=60)  # the client would keep it that long
        async with httpx.AsyncClient(base_url=service.url, limits=limits) as client:
            first = await client.get("/healthz")
            assert first.status_code == 200
            await asyncio.sleep(IDLE_S)
            second = await client.get("/healthz")
            assert second.status_code == 200
            assert local_port(second) == local_port(first), "the service closed the idle connection"
    finally:
        await service.stop()
