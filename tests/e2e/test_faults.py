"""Faults while a workload runs, on the separate service processes (R25, R31, DESIGN 5):

* ``kill -9`` of each service in turn, then a restart: no acknowledged lead is lost, no CRM
  record is duplicated, every erasure finishes with all its receipts;
* the Kafka broker restarted, the store restarted (both need restartable local servers: run
  without ``LEADTRAIL_KAFKA_BOOTSTRAP`` / ``LEADTRAIL_MONGO_URL``, else they are deselected);
* the CRM answering 500 for a while: retried, every lead lands once;
* a poison message on every consumed topic: each consuming service dead-letters it with its
  error and the partition moves on to the good event behind it.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer

from contracts.dead_letter import DeadLetterV1
from tests.e2e.stack import SERVICES, E2EStack, consumer_groups
from tests.e2e.workload import ALL_RECEIPTS, Workload
from tests.helpers import eventually
from tests.infra import ServerControl
from tests.integration.crm_sync.test_crm_push import QUALIFYING

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # a busy 2-core machine is slow

PEOPLE_PER_FAULT = 8


async def _progress(workload: Workload, at_least: int) -> None:
    async def enough() -> bool | None:
        return True if len(workload.acknowledged()) >= at_least else None

    await eventually(enough, within=240, what=f"{at_least} leads acknowledged")


async def test_kill_9_of_each_service_mid_workload_loses_and_duplicates_nothing(
    healthy: E2EStack,
) -> None:
    workload = Workload(healthy)
    people = workload.mixed(PEOPLE_PER_FAULT * len(SERVICES))
    running = asyncio.create_task(workload.run_people(people, concurrency=3))
    try:
        for round_number, service in enumerate(SERVICES):
            await _progress(workload, PEOPLE_PER_FAULT * round_number + 4)
            await healthy.kill(service)
            await asyncio.sleep(1.0)
            await healthy.restart(service)
        await running
    finally:
        running.cancel()
    counts = await workload.reconcile()
    print(f"kill -9 workload: {counts}, client retries: {dict(workload.retries)}")
    assert counts["erased"] > 0


async def _server_restart_mid_workload(
    stack: E2EStack, control: ServerControl, server: str
) -> None:
    workload = Workload(stack)
    running = asyncio.create_task(workload.run_people(workload.mixed(PEOPLE_PER_FAULT * 2), 3))
    try:
        await _progress(workload, 4)
        await control.arestart()
        await running
    finally:
        running.cancel()
    counts = await workload.reconcile()
    print(f"{server} restart workload: {counts}, client retries: {dict(workload.retries)}")


async def test_a_kafka_broker_restart_mid_workload_loses_nothing(
    healthy: E2EStack, kafka_control: ServerControl
) -> None:
    await _server_restart_mid_workload(healthy, kafka_control, "Kafka")


async def test_a_store_restart_mid_workload_loses_nothing(
    healthy: E2EStack, mongo_control: ServerControl
) -> None:
    await _server_restart_mid_workload(healthy, mongo_control, "store")


async def test_a_crm_answering_500_for_a_while_gets_every_lead_once(healthy: E2EStack) -> None:
    workload = Workload(healthy)
    failing_from = len(healthy.hubspot.requests)
    healthy.hubspot.fail_next(25, status=500)
    await workload.run_people(workload.mixed(PEOPLE_PER_FAULT), concurrency=3)
    counts = await workload.reconcile()
    answered = Counter(r.status for r in healthy.hubspot.requests[failing_from:])
    assert answered[500] == 25, "the CRM did fail for a while"
    failures = [
        e
        for e in await healthy.events("crm-events")
        if e.type == "crm.sync_failed" and e.data["transient"]
    ]
    assert failures, "each failure is recorded"
    assert not any(e.data["dead_lettered"] for e in failures), "5xx are retried, not dropped"
    print(f"CRM 500s workload: {counts}, CRM answers: {dict(answered)}")


async def test_a_poison_message_on_every_topic_is_dead_lettered_and_the_partition_moves_on(
    healthy: E2EStack,
) -> None:
    workload = Workload(healthy)
    person = workload.person()
    await workload.capture(person)
    await workload.lead(person)
    subject = str(person.subject_id)
    groups = consumer_groups()
    topics = sorted({topic for consumed in groups.values() for topic in consumed})
    poisons = [b"\x00not json at all", b'{"id": "no-envelope", "type": 7}']
    placed: dict[str, tuple[int, int]] = {}
    producer = AIOKafkaProducer(bootstrap_servers=healthy.bootstrap, acks="all")
    await producer.start()
    try:
        for n, topic in enumerate(topics):
            sent = await producer.send_and_wait(
                healthy.prefix + topic, poisons[n % 2], key=subject.encode()
            )
            placed[topic] = (sent.partition, sent.offset)
    finally:
        await producer.stop()

    # Good events behind the poison, on the same partitions (same key: the subject).
    answered = await workload.call(
        "lead_ingest",
        "POST",
        f"/v1/leads/{person.lead_id}/interactions",
        json={"channel": "chat", "answers": QUALIFYING},
    )
    assert answered.status_code == 202
    await workload.lead(person, until=lambda v: v["state"] == "qualified")
    await workload.unsubscribe(person, "marketing_email")
    hold_id = await healthy.hold(subject, "Case 7")
    await workload.erase(person)
    deferred = await healthy.cluster.wait_for_event(
        "erasure-events", lambda e: e.type == "erasure.deferred" and e.subject_id == subject
    )
    assert deferred.data["hold_ids"] == [hold_id]
    await healthy.release(subject, hold_id)
    done = await healthy.cluster.wait_for_event(
        "erasure-events",
        lambda e: e.type == "erasure.completed" and e.subject_id == subject,
        within=90,
    )
    assert {receipt["service"] for receipt in done.data["receipts"]} == ALL_RECEIPTS

    expected = {(group, topic) for group, consumed in groups.items() for topic in consumed}

    async def dead_lettered() -> list[DeadLetterV1] | None:
        found = [
            letter
            for letter in await healthy.dead_letters()
            if (letter.source_partition, letter.source_offset)
            == placed.get(letter.source_topic.removeprefix(healthy.prefix))
        ]
        seen = {(x.consumer_group, x.source_topic.removeprefix(healthy.prefix)) for x in found}
        return found if seen >= expected else None

    letters = await eventually(dead_lettered, within=60, what="every poison dead-lettered")
    by_consumer = Counter(
        (x.consumer_group, x.source_topic.removeprefix(healthy.prefix)) for x in letters
    )
    assert by_consumer == dict.fromkeys(expected, 1), "each group dead-letters each poison once"
    for letter in letters:
        assert letter.error_type == "ValidationError"
        assert letter.error_message
        assert letter.event_type is None, "no header claimed a type"
    await healthy.wait_for_zero_lag()
