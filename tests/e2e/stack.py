"""The whole cluster for end-to-end tests: five services as separate processes (``python -m
services.<name>``, like ``make up``), a local HubSpot (tests/crm_fakes) as the tenant's CRM, on
the session's real Kafka and MongoDB-wire server, with their own topic prefix and database.

Tests talk to the services over real HTTP only. :class:`E2EStack` wraps the in-process harness's
:class:`~tests.integration.cluster.Cluster` (same ``auth``, ``events``, ``wait_for_event``,
``get_json``), whose clients here point at the processes' loopback ports, and adds what only
separate processes allow: ``kill`` (SIGKILL) and ``restart`` of a service, and the test-only
clock offset file every process reads (:class:`~services.common.clock.OffsetFileClock`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from contracts import ALL_TOPICS, EventEnvelope
from contracts.dead_letter import DeadLetterV1
from ops.dlq import read_dead_letters
from ops.operator import operator_publisher, place_hold, release_hold
from services import SERVICE_PACKAGES, declarations
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings
from services.common.tenants import TenantDirectory
from services.common.topics import ensure_topics
from tests.crm_fakes.hubspot import DEFAULT_TOKEN, HubSpotFake
from tests.helpers import eventually
from tests.integration.cluster import Cluster
from tests.integration.crm_sync.test_crm_push import write_crm_config
from tests.services_proc import ServiceProcess

__all__ = ["SERVICES", "E2EStack", "consumer_groups", "e2e_stack"]

SERVICES = tuple(package.removeprefix("services.") for package in SERVICE_PACKAGES)
"""The services' packages under ``services``, as ``E2EStack.processes`` keys them."""

# Fast enough for tests, still the real code paths: short retry backoffs, a quick retention
# tick, a breaker that opens and probes within seconds, and enough CRM attempts that a CRM
# failing "for a while" is retried, not dead-lettered.
TUNING = {
    "LEADTRAIL_HANDLER_RETRY_BACKOFF_S": "0.05",
    "LEADTRAIL_PUBLISH_TIMEOUT_S": "5",
    "LEADTRAIL_IDEMPOTENCY_TAKEOVER_S": "3",
    "LEADTRAIL_RATE_LIMIT_PER_S": "2000",
    "LEADTRAIL_RATE_LIMIT_BURST": "4000",
    "LEADTRAIL_TICK_INTERVAL_S": "0.5",
    "LEADTRAIL_OVERDUE_CHECK_INTERVAL_S": "5",
    "LEADTRAIL_DISPATCH_INTERVAL_S": "0.05",
    "LEADTRAIL_BACKOFF_BASE_S": "0.05",
    "LEADTRAIL_BACKOFF_MAX_S": "1",
    "LEADTRAIL_BREAKER_THRESHOLD": "5",
    "LEADTRAIL_BREAKER_OPEN_S": "1",
    "LEADTRAIL_MAX_ATTEMPTS": "1000",
    "LEADTRAIL_LOG_LEVEL": "info",
    "LEADTRAIL_STORE_TIMEOUT_S": "3",
    "LEADTRAIL_UNAVAILABLE_BACKOFF_MAX_S": "1",
}


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def consumer_groups() -> dict[str, list[str]]:
    """Every service's consumer group -> the logical topics it reads, from the services'
    declarations (the subscriptions they register live)."""
    return {
        subscription.group_id: [topic.name for topic in subscription.topics]
        for declaration in declarations()
        for subscription in declaration.subscriptions
    }


@dataclass
class E2EStack:
    """The running cluster; ``cluster`` holds the HTTP clients and event readers."""

    cluster: Cluster
    processes: dict[str, ServiceProcess]
    hubspot: HubSpotFake
    env: dict[str, str]
    clock_file: Path
    log_dir: Path

    @property
    def bootstrap(self) -> str:
        return str(self.cluster.base["kafka_bootstrap"])

    @property
    def prefix(self) -> str:
        return str(self.cluster.base["topic_prefix"])

    @property
    def settings(self) -> CommonSettings:
        return CommonSettings.model_validate(self.cluster.base)

    def client(self, service: str) -> httpx.AsyncClient:
        return self.cluster.client(service)

    async def kill(self, service: str) -> None:
        await self.processes[service].kill()

    async def restart(self, service: str) -> None:
        await self.processes[service].start(ready_within=120)

    @asynccontextmanager
    async def second_replicas(self) -> AsyncIterator[list[ServiceProcess]]:
        """A second process of every service, in the same consumer groups: starting them
        makes every group rebalance, and stopping them (SIGTERM) makes it rebalance again."""
        log_dir = self.log_dir / "replicas"
        log_dir.mkdir(exist_ok=True)
        replicas = [ServiceProcess(f"services.{name}", self.env, log_dir) for name in SERVICES]
        try:
            await asyncio.gather(*(replica.start(ready_within=180) for replica in replicas))
            yield replicas
        finally:
            await asyncio.gather(*(replica.stop() for replica in replicas))

    async def jump_clock(self, delta: timedelta) -> None:
        """Move every process's clock forward (atomically: the file is replaced whole)."""
        current = float(self.clock_file.read_text() or 0) if self.clock_file.exists() else 0.0
        scratch = self.clock_file.with_suffix(".tmp")
        scratch.write_text(f"{current + delta.total_seconds()}\n")
        scratch.chmod(0o600)  # the services refuse an offset file others could write
        scratch.replace(self.clock_file)

    async def events(self, topic: str) -> list[EventEnvelope]:
        return await self.cluster.events(topic)

    async def dead_letters(self) -> list[DeadLetterV1]:
        return [letter async for letter in read_dead_letters(self.bootstrap, self.prefix)]

    @asynccontextmanager
    async def operator(self) -> AsyncIterator[EventPublisher]:
        """Publishes operator events (retention policies, legal holds) like ``leadtrail``."""
        async with operator_publisher(self.settings) as publisher:
            yield publisher

    @asynccontextmanager
    async def mongo(self) -> AsyncIterator[Any]:
        """The cluster's database, for checks no API exposes (what is left after erasure)."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            str(self.cluster.base["mongo_url"]), tz_aware=True
        )
        try:
            yield client[str(self.cluster.base["mongo_db"])]
        finally:
            await client.close()

    async def document(
        self, collection: str, document_id: str, *, within: float = 60.0
    ) -> dict[str, Any]:
        """A read-model document once it exists (for facts no API shows, like a legal hold
        having reached the services that enforce it)."""
        async with self.mongo() as db:

            async def probe() -> dict[str, Any] | None:
                found: dict[str, Any] | None = await db[collection].find_one({"_id": document_id})
                return found

            return await eventually(probe, within=within, what=f"{document_id} in {collection}")

    async def hold(self, subject_id: str, reason: str) -> str:
        """Place a legal hold like ``leadtrail holds place``; returns once retention-scheduler
        and erasure-propagator both know it."""
        async with self.operator() as operator:
            placed = await place_hold(
                operator, tenant_id="acme", subject_id=subject_id, reason=reason, placed_by="legal"
            )
        hold_id = str(placed.data["hold_id"])
        await self.document("retention_holds", hold_id)
        await self.document("erasure_holds", hold_id)
        return hold_id

    async def release(self, subject_id: str, hold_id: str) -> None:
        async with self.operator() as operator:
            await release_hold(
                operator,
                tenant_id="acme",
                subject_id=subject_id,
                hold_id=hold_id,
                released_by="legal",
                reason="case closed",
            )

    async def consumer_lag(self) -> dict[str, int]:
        """Per consumer group, how many records on its topics it has not committed yet."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await admin.start()
        await consumer.start()
        try:
            counts = {spec.name: spec.partitions for spec in ALL_TOPICS}  # as ensure_topics made
            lag: dict[str, int] = {}
            for group, topics in consumer_groups().items():
                partitions = [
                    TopicPartition(self.prefix + topic, partition)
                    for topic in topics
                    for partition in range(counts[topic])
                ]
                ends = await consumer.end_offsets(partitions)
                committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
                lag[group] = sum(
                    end - max(getattr(committed.get(tp), "offset", 0), 0)
                    for tp, end in ends.items()
                )
            return lag
        finally:
            await consumer.stop()
            await admin.close()

    async def wait_for_zero_lag(self, within: float = 180.0) -> None:
        async def drained() -> bool | None:
            lag = await self.consumer_lag()
            return True if not any(lag.values()) else None

        try:
            await eventually(drained, within=within, what="every consumer group at lag 0")
        except AssertionError as error:
            raise AssertionError(f"{error}: {await self.consumer_lag()}") from None


async def _start_all(processes: dict[str, ServiceProcess]) -> None:
    await asyncio.gather(*(process.start(ready_within=180) for process in processes.values()))


@asynccontextmanager
async def e2e_stack(
    kafka_bootstrap: str, mongo_url: str, workdir: Path, *, test_clock: bool = False
) -> AsyncIterator[E2EStack]:
    """Start the CRM fake, the tenants' configuration, the topics and the five processes.

    ``test_clock``: every process reads ``<workdir>/clock-offset`` (see
    :meth:`E2EStack.jump_clock`); only the test that moves time should ask for it.
    """
    suffix = uuid.uuid4().hex[:10]
    config_dir = workdir / "config"
    log_dir = workdir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    clock_file = workdir / "clock-offset"
    base: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "mongo_url": mongo_url,
        "mongo_db": f"e2e_{suffix}",
        "topic_prefix": f"e2e-{suffix}.",
        "kek": _key(),
        "blind_index_key": _key(),
        "unsubscribe_key": _key(),
        "config_dir": config_dir,
    }
    directory = TenantDirectory(config_dir)
    keys = {}
    _, keys["acme"] = directory.add("Acme", tenant_id="acme", default_region="IT")
    _, keys["globex"] = directory.add("Globex", tenant_id="globex", default_region="DE")
    env = {f"LEADTRAIL_{name.upper()}": str(value) for name, value in base.items()}
    env |= TUNING | {"LT_TEST_HUBSPOT_TOKEN": DEFAULT_TOKEN}
    if test_clock:
        env |= {
            "LEADTRAIL_TEST_CLOCK_OFFSET_FILE": str(clock_file),
            "LEADTRAIL_ENABLE_TEST_CLOCK": "true",
        }
    await ensure_topics(kafka_bootstrap, base["topic_prefix"], ALL_TOPICS)
    async with AsyncExitStack() as stack:
        hubspot = await stack.enter_async_context(
            HubSpotFake.running(custom_properties=["leadtrail_score"])
        )
        write_crm_config(config_dir, hubspot.base_url)
        processes = {name: ServiceProcess(f"services.{name}", env, log_dir) for name in SERVICES}
        for process in processes.values():
            stack.push_async_callback(process.stop)
        await _start_all(processes)
        cluster = Cluster(base, config_dir, keys=keys, skip_invalid=True)
        for name, process in processes.items():
            cluster.clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(base_url=process.url, timeout=30)
            )
        yield E2EStack(cluster, processes, hubspot, env, clock_file, log_dir)
        async with AsyncMongoClient[dict[str, Any]](mongo_url) as mongo:
            await mongo.drop_database(base["mongo_db"])
