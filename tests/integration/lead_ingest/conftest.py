"""lead-ingest running in-process (its real lifespan: Kafka, the store, subscribers), driven
through httpx's ASGI transport."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from contracts import ALL_TOPICS, EventEnvelope
from services.common.publisher import EventPublisher
from services.common.runtime import Runtime, built_service, create_app
from services.common.tenants import TenantDirectory
from services.common.topics import ensure_topics
from services.lead_ingest.declaration import DECLARATION
from services.lead_ingest.handlers import LeadIngestHandlers
from services.lead_ingest.settings import IngestSettings
from tests.helpers import eventually
from tests.integration.cluster import read_topic

RULES = """
version: 1
threshold: 50
criteria:
  - {id: budget_10k, answer: budget, op: gte, value: 10000, points: 30}
  - {id: decision_maker, answer: role, op: in, value: [owner, CEO, CTO], points: 25}
  - {id: timeline_soon, answer: timeline, op: eq, value: this quarter, points: 20}
"""


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def ingest_settings(
    kafka_bootstrap: str, mongo_url: str, config_dir: Path, **extra: Any
) -> IngestSettings:
    suffix = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "mongo_url": mongo_url,
        "mongo_db": f"it_{suffix}",
        "topic_prefix": f"it-{suffix}.",
        "kek": key(),
        "blind_index_key": key(),
        "config_dir": config_dir,
        "handler_retry_backoff_s": 0.05,
        "publish_timeout_s": 5.0,
        **extra,
    }
    return IngestSettings.model_validate(values)


@dataclass
class Ingest:
    client: httpx.AsyncClient
    settings: IngestSettings
    runtime: Runtime
    key: str
    other_key: str
    consent_publisher: EventPublisher
    handlers: LeadIngestHandlers

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def post_lead(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.client.post("/v1/leads", json=body, headers={**self.auth(), **headers})

    async def lead(self, lead_id: str, until: Any = None) -> dict[str, Any]:
        """GET the lead once it is projected (and, if given, once ``until(body)`` holds)."""

        async def probe() -> dict[str, Any] | None:
            response = await self.client.get(f"/v1/leads/{lead_id}", headers=self.auth())
            if response.status_code != 200:
                return None
            body: dict[str, Any] = response.json()
            return body if until is None or until(body) else None

        return await eventually(probe, what=f"lead {lead_id}")

    async def events(self, topic: str, count: int) -> list[EventEnvelope]:
        """The first ``count`` events on a topic (fails if fewer arrive)."""
        consumer = AIOKafkaConsumer(
            self.settings.topic(topic),
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        found: list[EventEnvelope] = []
        try:

            async def probe() -> list[EventEnvelope] | None:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    found.extend(EventEnvelope.model_validate_json(r.value) for r in records)
                return found if len(found) >= count else None

            await eventually(probe, what=f"{count} events on {topic}")
        finally:
            await consumer.stop()
        return found

    async def all_events(self, topic: str) -> list[EventEnvelope]:
        """Every event currently on a topic (up to its end offsets)."""
        return await read_topic(self.settings.kafka_bootstrap, self.settings.topic(topic))


def sample_lead(email: str = "maria.rossi@example.org", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": {"kind": "web_form", "url": "https://acme.example/contact"},
        "contact": {
            "email": email,
            "phone": "347 123 4567",
            "first_name": "Maria",
            "last_name": "Rossi",
            "company": "Rossi Impianti Srl",
        },
        "consent": {
            "purposes": ["crm_sync", "marketing_email"],
            "notice_version": "2026-10",
            "given_at": "2026-11-02T09:15:03Z",
            "channel": "web_form",
        },
        "context": {"ip": "203.0.113.77", "user_agent": "Mozilla/5.0"},
    }
    body.update(overrides)
    return body


async def start_ingest(settings: IngestSettings) -> tuple[Any, Runtime]:
    await ensure_topics(settings.kafka_bootstrap, settings.topic_prefix, ALL_TOPICS)
    app = create_app(DECLARATION, settings)
    return app, app.state.runtime


@pytest.fixture
async def ingest(
    kafka_bootstrap: str, mongo_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Ingest]:
    overrides = getattr(request, "param", {})
    settings = ingest_settings(kafka_bootstrap, mongo_url, tmp_path, **overrides)
    directory = TenantDirectory(tmp_path)
    _, acme_key = directory.add("Acme", tenant_id="acme", default_region="IT")
    _, globex_key = directory.add("Globex", tenant_id="globex", default_region="DE")
    (tmp_path / "tenants" / "acme").mkdir(parents=True)
    (tmp_path / "tenants" / "acme" / "scoring.yaml").write_text(RULES)
    app, runtime = await start_ingest(settings)
    consent_publisher = EventPublisher(
        broker=runtime.broker,
        settings=settings,
        registry=runtime.registry,
        cipher=runtime.cipher,
        clock=runtime.clock,
        producer="consent-ledger",
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            handlers = built_service(app).handlers
            yield Ingest(
                client, settings, runtime, acme_key, globex_key, consent_publisher, handlers
            )
        await runtime.mongo.drop_database(settings.mongo_db)
