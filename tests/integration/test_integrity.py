"""Tamper evidence on real Kafka: events published by the services, the operator CLI and a DLQ
redrive verify clean; a corrupted copy, a forged event and a gap are each reported at their
offset, with exit code 1."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import Result

from contracts import EventEnvelope
from contracts.dead_letter import DeadLetterV1
from contracts.envelope import Integrity
from contracts.topics import DEAD_LETTERS, LEAD_EVENTS
from ops.dlq import redrive
from ops.operator import operator_publisher, place_hold
from ops.verify import LogRecord, read_log
from services.common.integrity import ChainSealer
from services.common.settings import CommonSettings
from tests.integration.cluster import Cluster, cluster
from tests.integration.lead_ingest.conftest import RULES, sample_lead

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(kafka_bootstrap: str, mongo_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    acme = tmp_path / "tenants" / "acme"
    acme.mkdir(parents=True)
    (acme / "scoring.yaml").write_text(RULES)
    async with cluster(
        kafka_bootstrap, mongo_url, tmp_path, ["lead_ingest", "consent_ledger"]
    ) as running:
        yield running


async def verify(stack: Cluster, *args: str) -> Result:
    return await stack.cli("verify", *args, env=stack.auditor_env())


async def lead_records(stack: Cluster) -> list[LogRecord]:
    physical = stack.topic(LEAD_EVENTS.name)
    return [r async for r in read_log(stack.base["kafka_bootstrap"], {physical: LEAD_EVENTS.name})]


async def produce(stack: Cluster, topic: str, value: bytes, like: LogRecord | None = None) -> Any:
    producer = AIOKafkaProducer(bootstrap_servers=stack.base["kafka_bootstrap"], acks="all")
    await producer.start()
    try:
        return await producer.send_and_wait(
            stack.topic(topic),
            value,
            key=like.key if like else None,
            headers=list(like.headers) if like else None,
        )
    finally:
        await producer.stop()


async def test_verify_passes_a_real_log_and_reports_each_tampering_at_its_offset(
    stack: Cluster,
) -> None:
    # A workload: leads through the API, consent-ledger reacting, an operator's legal hold.
    for n in range(4):
        response = await stack.client("lead_ingest").post(
            "/v1/leads", json=sample_lead(f"p{n}@example.org"), headers=stack.auth()
        )
        assert response.status_code == 202, response.text
    await stack.wait_for_event("consent-events", lambda e: e.type == "consent.granted")
    settings = CommonSettings.model_validate(stack.base)
    async with operator_publisher(settings) as publisher:
        hold = await place_hold(
            publisher, tenant_id="acme", subject_id=None, reason="Case 118", placed_by="legal"
        )
    assert hold.integrity is not None
    assert hold.integrity.chain.startswith("operator/")

    # A DLQ redrive sends an original record again, byte for byte.
    records = await lead_records(stack)
    victim = next(r for r in records if json.loads(r.value or b"")["type"] == "lead.captured")
    letter = DeadLetterV1(
        failed_at=datetime.now(UTC),
        service="crm-sync",
        consumer_group="g",
        source_topic=stack.topic(LEAD_EVENTS.name),
        source_partition=victim.partition,
        source_offset=victim.offset,
        key_b64=base64.b64encode(victim.key or b"").decode(),
        value_b64=base64.b64encode(victim.value or b"").decode(),
        headers={k: v.decode() for k, v in victim.headers},
        error_type="CrmError",
        error_message="boom",
        attempts=5,
    )
    await produce(stack, DEAD_LETTERS.name, letter.model_dump_json().encode())
    await redrive(stack.base["kafka_bootstrap"], stack.base["topic_prefix"], letter.id)

    clean = await verify(stack, "--json")
    assert clean.exit_code == 0, clean.output
    report = json.loads(clean.stdout)
    assert report["findings"] == []
    assert report["topics"]["lead-events"]["sealed"] >= 5
    assert report["topics"]["lead-events"]["redelivered"] == 1
    assert report["topics"]["consent-events"]["sealed"] >= 1
    assert report["topics"]["retention-events"]["sealed"] == 1
    assert report["topics"]["dead-letters"]["dead_letters"] == 1
    assert report["chains"] >= 3  # lead-ingest, consent-ledger, the operator

    # 1. a corrupted copy: the victim with one value changed, the same key and headers
    body = json.loads(victim.value or b"")
    body["data"]["source"]["kind"] = "import"
    corrupted = await produce(stack, LEAD_EVENTS.name, json.dumps(body).encode(), like=victim)
    # 2. a forged event from someone without the key
    forged = EventEnvelope.model_validate(json.loads(victim.value or b"")).model_copy(
        update={
            "id": "019ad0f2-5e30-7c6d-9043-7dab2e4f9033",
            "integrity": Integrity(chain="lead-ingest/forged", seq=0, prev=None, mac="ab" * 32),
        }
    )
    forged_at = await produce(stack, LEAD_EVENTS.name, forged.model_dump_json().encode())
    # 3. a gap: a producer's seq 1 removed from the log
    sealer = ChainSealer(settings.integrity_key_bytes(), "lead-ingest")
    chain = [
        sealer.seal(EventEnvelope.model_validate(body | {"id": f"gap-{n}"}))[0] for n in range(3)
    ]
    for event in (chain[0], chain[2]):
        gap_at = await produce(
            stack,
            LEAD_EVENTS.name,
            event.model_dump_json().encode(),
            like=LogRecord(
                LEAD_EVENTS.name,
                0,
                0,
                event.kafka_key(),
                None,
                [(k, v.encode()) for k, v in event.kafka_headers().items()],
            ),
        )

    found = await verify(stack)
    assert found.exit_code == 1, found.output
    as_json = await verify(stack, "--json")
    assert as_json.exit_code == 1
    findings = {
        (f["kind"], f["partition"], f["offset"]) for f in json.loads(as_json.stdout)["findings"]
    }
    assert findings == {
        ("altered", corrupted.partition, corrupted.offset),
        ("altered", forged_at.partition, forged_at.offset),
        ("gap", gap_at.partition, gap_at.offset),
    }
    for kind, partition, offset in findings:
        assert f"{kind.upper()} " in found.stdout
        assert f"lead-events/{partition}@{offset}" in found.stdout
    assert "3 finding(s)" in found.stdout

    # Another tenant's view: none of it concerns globex.
    globex = await verify(stack, "--tenant", "globex", "--topic", "lead-events")
    assert globex.exit_code == 0, globex.output
    assert "events of tenant globex" in globex.stdout
