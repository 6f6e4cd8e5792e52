"""Property, on the document store: for random lead lifecycles, a live projection that saw
redeliveries (records handled again after a crash before the commit) ends equal to a replay
that applies each record once, through the same ``apply``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from contracts import EventEnvelope
from ops.replay import SERVICES, diff_documents
from services.common.store import Suffixed

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def event(kind: str, lead: int, step: int, subject: int) -> EventEnvelope:
    lead_id = f"lead_{lead}"
    payloads: dict[str, dict[str, Any]] = {
        "lead.captured": {
            "lead_id": lead_id,
            "source": {"kind": "web_form", "url": "https://acme.example/form"},
        },
        "lead.interaction_recorded": {
            "lead_id": lead_id,
            "interaction_id": f"i{step}",
            "channel": "phone",
            "answered": ["budget"],
        },
        "lead.scored": {
            "lead_id": lead_id,
            "score": step % 100,
            "threshold": 50,
            "qualified": step % 100 >= 50,
            "rules_version": 1,
            "matched": [],
            "trigger": "interaction",
        },
        "lead.qualified": {"lead_id": lead_id, "score": 60, "threshold": 50, "by": "rules"},
        "consent.withdrawn": {"purpose": "profiling", "origin": "api"},
    }
    data = payloads[kind]
    return EventEnvelope(
        type=kind,
        version=1,
        occurred_at=START + timedelta(seconds=step),
        tenant_id="acme",
        subject_id=f"sub_{subject}",
        correlation_id="c",
        producer="test",
        data=data,
    )


KINDS = ["lead.interaction_recorded", "lead.scored", "lead.qualified", "consent.withdrawn"]
lifecycles = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(KINDS), st.integers(0, 3)),
    min_size=1,
    max_size=12,
)


@pytest.fixture
async def client(mongo_url: str) -> Any:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    yield mongo
    await mongo.close()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=lifecycles)
async def test_live_with_redeliveries_equals_a_replay(client: Any, steps: Any) -> None:
    spec = SERVICES["lead-ingest"]
    db = client[f"prop_{uuid.uuid4().hex[:10]}"]
    try:
        events = [event("lead.captured", lead, 0, lead) for lead in range(3)]
        events += [event(k, lead, i, lead) for i, (lead, k, _) in enumerate(steps, start=1)]
        redeliveries = [0, 0, 0] + [again for _, _, again in steps]
        live = spec.projector(db)
        for index, envelope in enumerate(events):
            await live.apply(envelope)
            # The last few records again, as after a crash before the offset commit.
            for again in events[max(0, index - redeliveries[index]) : index + 1][:-1]:
                await live.apply(again)
            if redeliveries[index]:
                await live.apply(envelope)
        rebuilt = spec.projector(Suffixed(db, "rebuilt"))
        for envelope in events:
            await rebuilt.apply(envelope)
        for name in spec.read_models:
            found = diff_documents(
                name,
                await db[name].find({}, sort=[("_id", 1)]).to_list(None),
                await db[f"{name}_rebuilt"].find({}, sort=[("_id", 1)]).to_list(None),
            )
            assert [str(d) for d in found] == [], name
    finally:
        await client.drop_database(db.name)
