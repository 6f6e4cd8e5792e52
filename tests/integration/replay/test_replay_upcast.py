"""Replay equality on real Kafka and the document store over a log that mixes event versions.

Before ``lead.scored`` v2, lead-ingest published v1 scores (criterion id, answer key and points;
no condition). The log of an upgraded cluster holds both: here an old lead-ingest instance (its
own integrity chain, the subject's data key) has written v1 scores, one of them for a subject
who is then erased, and today's lead-ingest scores a lead with v2. Live handlers and the replay
read the v1 events through the registry's upcaster; every rebuilt read model must equal the
live one, and the v1 scores must show exactly what their producer recorded (``rule`` not
recorded, inputs still decryptable until the erasure).
"""

from __future__ import annotations

import json
import uuid
from pprint import pformat
from typing import Any

import pytest

from contracts import REGISTRY, EventEnvelope, new_event_id
from services.common.publisher import EventPublisher
from services.lead_ingest.declaration import DECLARATION as LEAD_INGEST
from tests.integration.replay.test_replay import capture, settle
from tests.integration.retention_erasure.conftest import Lifecycle
from tests.replay_check import replay_problems

pytestmark = pytest.mark.integration

V1_MATCHED = [
    {"criterion_id": "budget_10k", "answer": "budget", "points": 30},
    {"criterion_id": "decision_maker", "answer": "role", "points": 25},
]
"""What a v1 producer recorded per matched criterion (RULES of the lead-ingest tests)."""


def old_lead_ingest(lifecycle: Lifecycle) -> EventPublisher:
    """A lead-ingest instance from before lead.scored v2: its own chain, the same keys."""
    runtime = lifecycle.stack.runtimes["lead_ingest"]
    return EventPublisher(
        broker=runtime.broker,
        settings=lifecycle.stack.settings_for(LEAD_INGEST),
        registry=REGISTRY,
        cipher=runtime.cipher,
        clock=lifecycle.clock,
        producer="lead-ingest",
    )


async def publish_v1_score(
    lifecycle: Lifecycle,
    old: EventPublisher,
    lead: dict[str, Any],
    matched: list[dict[str, Any]],
    inputs: dict[str, Any],
) -> EventEnvelope:
    """A ``lead.scored`` v1 written as the old producer wrote it: raw v1 ``data``, the inputs
    encrypted under the subject's key, sealed into the old instance's chain."""
    event_id = new_event_id()
    score = sum(int(m["points"]) for m in matched)
    cipher = lifecycle.stack.runtimes["lead_ingest"].cipher
    envelope = EventEnvelope(
        id=event_id,
        type="lead.scored",
        version=1,
        occurred_at=lifecycle.clock.now(),
        tenant_id="acme",
        subject_id=lead["subject_id"],
        correlation_id=str(uuid.uuid4()),
        producer="lead-ingest",
        data={
            "lead_id": lead["lead_id"],
            "score": score,
            "threshold": 50,
            "qualified": score >= 50,
            "rules_version": 1,
            "matched": matched,
            "trigger": "interaction",
        },
        pii=await cipher.encrypt(
            tenant_id="acme",
            subject_id=lead["subject_id"],
            event_id=event_id,
            pii={"inputs": inputs},
        ),
    )
    return await old.send(envelope)


async def verify_log(lifecycle: Lifecycle) -> dict[str, Any]:
    stack = lifecycle.stack
    result = await stack.cli("verify", "--json", env=stack.auditor_env())
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


async def test_replay_equals_live_over_v1_and_v2_scores_and_an_erasure(
    lifecycle: Lifecycle,
) -> None:
    stack = lifecycle.stack
    ingest, auth = stack.client("lead_ingest"), stack.auth()

    # History from before the upgrade: two leads scored by the old producer (v1).
    bruno = await capture(lifecycle, "bruno", "347 200 0001")
    carla = await capture(lifecycle, "carla", "347 200 0002")
    old = old_lead_ingest(lifecycle)
    bruno_v1 = await publish_v1_score(
        lifecycle, old, bruno, V1_MATCHED, {"budget_10k": 20000, "decision_maker": "CEO"}
    )
    carla_v1 = await publish_v1_score(lifecycle, old, carla, V1_MATCHED[:1], {"budget_10k": 15000})
    assert bruno_v1.version == carla_v1.version == 1
    assert bruno_v1.integrity is not None
    assert bruno_v1.integrity.chain.startswith("lead-ingest/")

    # After it: today's lead-ingest scores anna (v2), and carla is erased.
    anna = await capture(lifecycle, "anna", "347 200 0003")
    response = await ingest.post(
        f"/v1/leads/{anna['lead_id']}/interactions",
        json={"channel": "phone", "answers": {"budget": 20000, "role": "CEO"}},
        headers=auth,
    )
    assert response.status_code == 202, response.text
    # The live reaction to bruno's upcast v1 score: qualified by the rules.
    await stack.wait_for_event(
        "lead-events",
        lambda e: e.type == "lead.qualified" and e.causation_id == bruno_v1.id,
        within=60,
    )
    await lifecycle.request("erasure", carla["lead_id"])
    await stack.wait_for_event(
        "erasure-events",
        lambda e: e.type == "erasure.completed" and e.subject_id == carla["subject_id"],
        within=60,
    )
    await settle(stack)

    scores = {
        e.data["lead_id"]: e for e in await stack.events("lead-events") if e.type == "lead.scored"
    }
    assert {lead: e.version for lead, e in scores.items()} == {
        bruno["lead_id"]: 1,
        carla["lead_id"]: 1,
        anna["lead_id"]: 2,
    }, "the log holds both versions as published"

    # Live, the v1 scores read exactly as recorded: no rule, inputs from the v1 ciphertext.
    db = stack.runtimes["lead_ingest"].db
    leads = {d["_id"]: d for d in await db["leads"].find({}).to_list(None)}
    assert leads[bruno["lead_id"]]["score"]["matched"] == V1_MATCHED
    assert leads[bruno["lead_id"]]["qualified"]["by"] == "rules"
    assert leads[carla["lead_id"]]["score"]["matched"] == V1_MATCHED[:1]
    assert leads[carla["lead_id"]]["erased_at"] is not None
    assert leads[carla["lead_id"]]["score"]["inputs"] is None, "erasure reached the v1 score"
    view = await stack.get_json("lead_ingest", f"/v1/leads/{bruno['lead_id']}")
    assert view["state"] == "qualified"
    assert view["score"]["explanation"] == [
        {
            "criterion_id": "budget_10k",
            "answer": "budget",
            "input": 20000,
            "points": 30,
            "rule": None,
        },
        {
            "criterion_id": "decision_maker",
            "answer": "role",
            "input": "CEO",
            "points": 25,
            "rule": None,
        },
    ]
    view = await stack.get_json("lead_ingest", f"/v1/leads/{carla['lead_id']}")
    assert view["state"] == "erased"
    assert view["score"]["explanation"] == [
        {
            "criterion_id": "budget_10k",
            "answer": "budget",
            "input": None,
            "points": 30,
            "rule": None,
        }
    ]
    view = await stack.get_json("lead_ingest", f"/v1/leads/{anna['lead_id']}")
    assert [e["rule"] for e in view["score"]["explanation"]] == [
        {"op": "gte", "value": 10000, "description": ""},
        {"op": "in", "value": ["owner", "CEO", "CTO"], "description": ""},
    ]
    crm = {d["_id"]: d for d in await db["crm_leads"].find({}).to_list(None)}
    assert crm[bruno["lead_id"]]["score"] == 55
    assert crm[bruno["lead_id"]]["qualified"] is True

    # The old producer's events are sealed into a chain of their own and verify.
    report = await verify_log(lifecycle)
    assert report["findings"] == []

    base = stack.base
    problems = await replay_problems(base["kafka_bootstrap"], base["topic_prefix"], db, "rebuilt")
    assert problems == {}, pformat(problems, width=100)

    rebuilt = await db["leads_rebuilt"].find_one({"_id": bruno["lead_id"]})
    assert rebuilt is not None
    assert rebuilt["score"]["matched"] == V1_MATCHED
