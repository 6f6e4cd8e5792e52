"""``leadtrail replay`` on real Kafka and the store: after a mixed workload (captures, scoring,
consent changes, a restriction, a policy, a legal hold, an erasure request, a retention expiry
and its erasure), every service's rebuilt read models equal the live ones; ``--to`` rebuilds
the state as it was; nothing live is written and nothing is published."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pprint import pformat
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from contracts import ALL_TOPICS
from ops.cli import app
from ops.operator import place_hold, release_hold, set_policy
from ops.replay import SERVICES, ReadModelSpec, compare, consumer_lag, diff_documents, replay
from ops.replay_source import partitions_of, plan_offsets
from services.common.declaration import KEYRING_COLLECTION
from services.common.topics import ensure_topics
from tests.helpers import eventually
from tests.integration.cluster import Cluster
from tests.integration.retention_erasure.conftest import Lifecycle
from tests.replay_check import replay_problems

pytestmark = pytest.mark.integration


async def end_offsets(stack: Cluster, spec: ReadModelSpec) -> Any:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.base["kafka_bootstrap"])
    await consumer.start()
    try:
        partitions = await partitions_of(
            stack.base["kafka_bootstrap"], [stack.topic(t.name) for t in spec.topics]
        )
        return await plan_offsets(consumer, partitions)
    finally:
        await consumer.stop()


async def caught_up(stack: Cluster) -> bool | None:
    """True once every consumer group of every service has committed the end offsets."""
    for spec in SERVICES.values():
        ranges = await end_offsets(stack, spec)
        lags = await consumer_lag(
            spec, stack.base["kafka_bootstrap"], stack.base["topic_prefix"], ranges
        )
        if lags:
            return None
    return True


async def settle(stack: Cluster) -> None:
    """Wait until nothing moves: every group caught up, twice in a row a moment apart."""
    for _ in range(2):
        await eventually(lambda: caught_up(stack), within=90, what="all consumers caught up")
        await asyncio.sleep(1.0)


async def capture(lifecycle: Lifecycle, name: str, phone: str) -> dict[str, Any]:
    """A lead of its own subject (the sample's shared phone number would link them all)."""
    contact = {"email": f"{name}@example.org", "phone": phone, "first_name": name.title()}
    return await lifecycle.capture(contact["email"], contact=contact)


async def mixed_workload(lifecycle: Lifecycle) -> dict[str, str]:
    stack, auth = lifecycle.stack, lifecycle.stack.auth()
    ingest, ledger = stack.client("lead_ingest"), stack.client("consent_ledger")
    anna = await capture(lifecycle, "anna", "347 100 0001")
    response = await ingest.post(
        f"/v1/leads/{anna['lead_id']}/interactions",
        json={"channel": "phone", "answers": {"budget": 20000, "role": "CEO"}},
        headers=auth,
    )
    assert response.status_code == 202, response.text
    bruno = await capture(lifecycle, "bruno", "347 100 0002")
    subject = bruno["subject_id"]
    for response in (
        await ledger.post(
            f"/v1/subjects/{subject}/consents/marketing_email/withdraw", headers=auth
        ),
        await ledger.post(
            f"/v1/subjects/{subject}/restriction", json={"reason": "dispute"}, headers=auth
        ),
        await ledger.delete(f"/v1/subjects/{subject}/restriction", headers=auth),
    ):
        assert response.status_code == 202, response.text
    await set_policy(
        lifecycle.operator,
        stack.config_dir,
        tenant_id="acme",
        category="lead_data",
        period_days=365,
        set_by="dpo@acme",
    )
    hold = await place_hold(
        lifecycle.operator, tenant_id="acme", subject_id=subject, reason="case 7", placed_by="l"
    )
    await release_hold(
        lifecycle.operator,
        tenant_id="acme",
        subject_id=subject,
        hold_id=hold.data["hold_id"],
        released_by="l",
    )
    carla = await capture(lifecycle, "carla", "347 100 0003")
    await lifecycle.request("erasure", carla["lead_id"])
    for erased in (carla["subject_id"],):
        await stack.wait_for_event(
            "erasure-events",
            lambda e, s=erased: e.type == "erasure.completed" and e.subject_id == s,
            within=60,
        )
    # A year later: anna's and bruno's data expire (policy: 365 days) and are erased; dario's
    # is new and stays.
    await settle(stack)
    lifecycle.clock.advance(timedelta(days=366))
    dario = await capture(lifecycle, "dario", "347 100 0004")
    await settle(stack)
    assert await lifecycle.scheduler.tick() >= 2
    await stack.wait_for_event(
        "erasure-events",
        lambda e: e.type == "erasure.completed" and e.subject_id == anna["subject_id"],
        within=60,
    )
    await settle(stack)
    return {"anna": anna["lead_id"], "dario": dario["lead_id"]}


async def test_every_rebuilt_read_model_equals_the_live_one_after_a_mixed_workload(
    lifecycle: Lifecycle,
) -> None:
    stack = lifecycle.stack
    leads = await mixed_workload(lifecycle)
    db = stack.runtimes["lead_ingest"].db
    anna = await db["leads"].find_one({"_id": leads["anna"]})
    assert anna is not None
    assert anna["erased_at"] is not None, "the workload reached the retention erasure"
    assert anna["qualified"]["by"] == "rules", "the workload scored and qualified"
    keys_before = await db[KEYRING_COLLECTION].find({}).to_list(None)
    names_before = set(await db.list_collection_names())
    published_before = {t: len(await stack.events(t)) for t in ("lead-events", "erasure-events")}

    base = stack.base
    problems = await replay_problems(base["kafka_bootstrap"], base["topic_prefix"], db, "rebuilt")
    assert problems == {}, pformat(problems, width=100)

    # Nothing but the read models was written beside the live data; keys and the rest untouched.
    names_after = set(await db.list_collection_names())
    assert names_after - names_before == {
        f"{name}_rebuilt" for spec in SERVICES.values() for name in spec.read_models
    }
    assert await db[KEYRING_COLLECTION].find({}).to_list(None) == keys_before
    assert {
        t: len(await stack.events(t)) for t in ("lead-events", "erasure-events")
    } == published_before, "a replay publishes nothing"


async def test_the_cli_verifies_and_swaps_in_the_rebuilt_collections(
    lifecycle: Lifecycle,
) -> None:
    stack = lifecycle.stack
    await capture(lifecycle, "erika", "347 100 0005")
    await settle(stack)
    db = stack.runtimes["consent_ledger"].db
    live = await db["consent_subjects"].find({}, sort=[("_id", 1)]).to_list(None)
    connection = [
        "--bootstrap",
        stack.base["kafka_bootstrap"],
        "--mongo-url",
        stack.base["mongo_url"],
        "--db",
        stack.base["mongo_db"],
        "--topic-prefix",
        stack.base["topic_prefix"],
    ]
    command = ["replay", "--service", "consent-ledger", "--into", "cli", *connection]
    runner = CliRunner()
    verified = await asyncio.to_thread(runner.invoke, app, [*command, "--verify", "--swap"])
    assert verified.exit_code == 0, verified.output
    assert "equal the live ones" in verified.output
    assert "swapped consent_subjects" in verified.output
    names = set(await db.list_collection_names())
    assert "consent_subjects_cli" not in names
    swapped = await db["consent_subjects"].find({}, sort=[("_id", 1)]).to_list(None)
    assert diff_documents("consent_subjects", live, swapped) == []

    # The live service goes on with the swapped-in collections.
    frank = await capture(lifecycle, "frank", "347 100 0006")
    await eventually(
        lambda: db["consent_subjects"].find_one({"_id": f"acme:{frank['subject_id']}"}),
        what="the live service writing into the swapped-in collection",
    )


async def test_to_rebuilds_the_state_as_it_was_at_that_moment(lifecycle: Lifecycle) -> None:
    stack = lifecycle.stack
    ingest = stack.client("lead_ingest")
    first = await capture(lifecycle, "greta", "347 100 0007")
    await settle(stack)
    db = stack.runtimes["lead_ingest"].db
    spec = SERVICES["lead-ingest"]
    then = {n: await db[n].find({}, sort=[("_id", 1)]).to_list(None) for n in spec.read_models}
    await asyncio.sleep(0.05)
    moment = datetime.now(UTC)
    await asyncio.sleep(0.05)
    response = await ingest.post(
        f"/v1/leads/{first['lead_id']}/interactions",
        json={"channel": "phone", "answers": {"budget": 20000, "role": "CEO"}},
        headers=stack.auth(),
    )
    assert response.status_code == 202, response.text
    await capture(lifecycle, "hugo", "347 100 0008")
    await settle(stack)

    result = await replay(
        spec,
        bootstrap=stack.base["kafka_bootstrap"],
        topic_prefix=stack.base["topic_prefix"],
        db=db,
        suffix="pit",
        to=moment,
    )
    assert result.read < sum(span.end for span in (await end_offsets(stack, spec)).values())
    for name in spec.read_models:
        rebuilt = await db[f"{name}_pit"].find({}, sort=[("_id", 1)]).to_list(None)
        assert [str(d) for d in diff_documents(name, then[name], rebuilt)] == [], name
    now = await compare(spec, db, "pit")
    assert now, "the live state has moved on since that moment"


async def test_unknown_topics_and_offsets_past_the_end_are_clear_errors(
    kafka_bootstrap: str,
) -> None:
    prefix = f"it-{uuid.uuid4().hex[:10]}."
    await ensure_topics(kafka_bootstrap, prefix, ALL_TOPICS)
    runner = CliRunner()
    base = ["replay", "--service", "lead-ingest", "--bootstrap", kafka_bootstrap]
    base += ["--mongo-url", "mongodb://127.0.0.1:1/", "--no-progress"]
    cases = {
        "topics it-nowhere.consent-events, it-nowhere.erasure-events, "
        "it-nowhere.lead-events, it-nowhere.privacy-events do not exist": [
            "--topic-prefix",
            "it-nowhere.",
        ],
        "--from offset 5 is past the end of every partition (the largest end offset is 0)": [
            "--topic-prefix",
            prefix,
            "--from",
            "5",
        ],
    }
    for message, extra in cases.items():
        result = await asyncio.to_thread(runner.invoke, app, [*base, *extra])
        assert result.exit_code == 2, result.output
        assert message in result.stderr, result.stderr
        assert result.stderr.startswith("error: ")
