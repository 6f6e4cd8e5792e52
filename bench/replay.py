"""Benchmark: rebuilding lead-ingest's read models with ``leadtrail replay``, beside a bare
aiokafka consumer reading the same events, in one run.

    make up DETACH=1
    .venv/bin/python -m bench.replay --events 1000000
    .venv/bin/python -m bench.replay --events 100000 --bootstrap 127.0.0.1:9092 \\
        --mongo-url mongodb://127.0.0.1:27017/

It writes ``--events`` realistic lead lifecycle events (per lead: ``lead.captured`` with its
encrypted contact, two ``lead.interaction_recorded``, ``lead.scored``, ``lead.qualified``),
built by the services' own :class:`EventPublisher` and written with a raw batching producer,
to fresh topics under a bench prefix. Then (a) a bare consumer reads them all (no decoding),
(a') a consumer decodes each as every service's consumer must (envelope, upcast, validation:
the Python ceiling of any projection), and (b) ``replay`` rebuilds lead-ingest's read models
from them (decode, upcast, apply_once fold in memory, then the documents written into
the document store and indexed: all timed).
lead-ingest is the projection measured: its ``leads`` documents are the richest read model and
every event type of the lifecycle touches them. The figure to read is the ratio; topics and
database are deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bench._common import machine, save, stack_env
from contracts import ALL_TOPICS, REGISTRY, EventEnvelope
from contracts.events import lead
from ops.replay import SERVICES, ReplayResult, replay
from ops.replay_source import partitions_of
from services.common.clock import FakeClock
from services.common.crypto import InMemoryDataKeyring, PiiCipher
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics

console = Console()
EVENTS_PER_LEAD = 5
SERVICE = "lead-ingest"


async def lifecycle(publisher: EventPublisher, clock: FakeClock, n: int) -> list[EventEnvelope]:
    """One lead's five events, as lead-ingest would publish them."""
    tenant, subject, lead_id = f"bench{n % 10}", f"sub_{n:012d}", f"lead_{n:012d}"
    ids: dict[str, Any] = {"tenant_id": tenant, "subject_id": subject, "correlation_id": f"c{n}"}
    events = [
        await publisher.build(
            lead.LeadCapturedV1.model_validate(
                {
                    "lead_id": lead_id,
                    "source": {"kind": "web_form", "url": "https://bench.example/contact"},
                    "consent": None,
                }
            ),
            pii=lead.LeadContactV1.model_validate(
                {"email": f"p{n}@example.org", "first_name": "Bench", "company": "Bench Srl"}
            ),
            **ids,
        )
    ]
    steps: tuple[dict[str, Any], ...] = ({"budget": 20000}, {"role": "CEO"})
    for step, answers in enumerate(steps):
        clock.advance(timedelta(seconds=1))
        events.append(
            await publisher.build(
                lead.LeadInteractionRecordedV1.model_validate(
                    {
                        "lead_id": lead_id,
                        "interaction_id": f"i{n}-{step}",
                        "channel": "phone",
                        "answered": sorted(answers),
                    }
                ),
                pii=lead.InteractionAnswersV1.model_validate({"answers": answers}),
                **ids,
            )
        )
    events.append(
        await publisher.build(
            lead.LeadScoredV2.model_validate(
                {
                    "lead_id": lead_id,
                    "score": 55,
                    "threshold": 50,
                    "qualified": True,
                    "rules_version": 1,
                    "matched": [
                        {
                            "criterion_id": "budget_10k",
                            "answer": "budget",
                            "points": 30,
                            "rule": {"op": "gte", "value": 10000},
                        }
                    ],
                    "trigger": "interaction",
                }
            ),
            pii=lead.ScoreInputsV1.model_validate({"inputs": {"budget_10k": 20000}}),
            **ids,
        )
    )
    events.append(
        await publisher.build(
            lead.LeadQualifiedV1(lead_id=lead_id, score=55, threshold=50, by="rules"), **ids
        )
    )
    return events


async def produce(bootstrap: str, prefix: str, count: int) -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    publisher = EventPublisher(
        broker=None,  # type: ignore[arg-type]  # build() only; a raw producer sends
        settings=CommonSettings.model_validate({"kek": "A" * 43 + "=", "topic_prefix": prefix}),
        registry=REGISTRY,
        cipher=PiiCipher(InMemoryDataKeyring()),
        clock=clock,
        producer=SERVICE,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    topic = prefix + "lead-events"
    try:
        with bar("producing") as (progress, task):
            pending: list[Any] = []
            for n in range(count // EVENTS_PER_LEAD):
                for event in await lifecycle(publisher, clock, n):
                    pending.append(
                        await producer.send(
                            topic,
                            event.model_dump_json().encode(),
                            key=event.kafka_key(),
                            headers=[(k, v.encode()) for k, v in event.kafka_headers().items()],
                        )
                    )
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    progress.advance(task, len(pending))
                    pending = []
            await asyncio.gather(*pending)
            progress.advance(task, len(pending))
    finally:
        await producer.stop()


class bar:  # noqa: N801 (used like a function)
    def __init__(self, label: str, total: int | None = None) -> None:
        self.label, self.total = label, total
        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.speed} /s"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )

    def __enter__(self) -> tuple[Progress, Any]:
        self.progress.__enter__()
        return self.progress, self.progress.add_task(self.label, total=self.total)

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)


async def read_topic(
    bootstrap: str, topic: str, handle: Callable[[bytes], object] | None = None
) -> tuple[int, float]:
    """Read every record of ``topic`` up to its end offsets, passing each value to ``handle``
    (if any); the count and the seconds it took."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = await partitions_of(bootstrap, [topic])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        count = 0
        began = time.perf_counter()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batch.items():
                count += len(records)
                if handle is not None:
                    for record in records:
                        handle(record.value or b"")
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return count, time.perf_counter() - began
    finally:
        await consumer.stop()


def decode(value: bytes) -> object:
    """What every consumer does before its projection: validate the envelope, upcast and
    validate the data."""
    return REGISTRY.decode(EventEnvelope.model_validate_json(value))


async def cleanup(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([spec.physical(prefix) for spec in ALL_TOPICS])
    finally:
        await admin.close()


async def rebuild(bootstrap: str, prefix: str, mongo_url: str, db_name: str) -> ReplayResult:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        with bar("replay") as (progress, task):
            return await replay(
                SERVICES[SERVICE],
                bootstrap=bootstrap,
                topic_prefix=prefix,
                db=client[db_name],
                suffix="bench",
                on_plan=lambda total: progress.update(task, total=total),
                on_progress=lambda n: progress.advance(task, n),
                on_write=lambda total: progress.reset(task, total=total, description="writing"),
            )
    finally:
        await client.close()


async def run(env: dict[str, str], *, events: int, keep: bool = False) -> dict[str, Any]:
    """Produce ``events`` into fresh topics, read them bare, rebuild lead-ingest from them."""
    bootstrap, mongo_url = env["LEADTRAIL_KAFKA_BOOTSTRAP"], env["LEADTRAIL_MONGO_URL"]
    run_id = uuid.uuid4().hex[:8]
    prefix, db_name = f"bench-replay-{run_id}.", f"bench_replay_{run_id}"
    await ensure_topics(bootstrap, prefix, ALL_TOPICS)
    try:
        await produce(bootstrap, prefix, events)
        count, bare_s = await read_topic(bootstrap, prefix + "lead-events")
        _, decode_s = await read_topic(bootstrap, prefix + "lead-events", decode)
        replayed = await rebuild(bootstrap, prefix, mongo_url, db_name)
    finally:
        if not keep:
            await cleanup(bootstrap, prefix)
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
            await client.drop_database(db_name)
            await client.close()
    bare_rate = count / bare_s if bare_s else 0.0
    return {
        "machine": machine(),
        "service": SERVICE,
        "events": count,
        "bare_consumer": {"seconds": bare_s, "per_second": bare_rate},
        "decoding_consumer": {"seconds": decode_s, "per_second": count / decode_s},
        "replay": {
            "seconds": replayed.elapsed_s,
            "per_second": replayed.per_second,
            "read": replayed.read,
            "applied": replayed.applied,
            "written": replayed.written,
            "failed": len(replayed.failed),
        },
        "ratio": replayed.per_second / bare_rate if bare_rate else float("nan"),
    }


def show(result: dict[str, Any]) -> None:
    bare, replayed = result["bare_consumer"], result["replay"]
    table = Table(
        title=f"replay of {result['service']}, {result['events']:,} events,"
        f" {result['replay']['written']:,} documents written"
    )
    for column in ("", "events", "seconds", "events/s"):
        table.add_column(column, justify="right")
    table.add_row(
        "bare aiokafka consumer",
        f"{result['events']:,}",
        f"{bare['seconds']:.1f}",
        f"{bare['per_second']:,.0f}",
    )
    decoding = result["decoding_consumer"]
    table.add_row(
        "consumer + decode (envelope, upcast, validate)",
        f"{result['events']:,}",
        f"{decoding['seconds']:.1f}",
        f"{decoding['per_second']:,.0f}",
    )
    table.add_row(
        f"replay {result['service']}",
        f"{replayed['read']:,}",
        f"{replayed['seconds']:.1f}",
        f"{replayed['per_second']:,.0f}",
    )
    console.print(table)
    console.print(f"replay / bare consumer: [bold]{result['ratio']:.3f}[/bold]")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to replay")
    parser.add_argument("--bootstrap", help="Kafka (default: the running stack's)")
    parser.add_argument("--mongo-url", help="MongoDB-wire store URL (default: the running stack's)")
    parser.add_argument("--keep", action="store_true", help="keep the topics and the database")
    args = parser.parse_args()
    if args.events < EVENTS_PER_LEAD:
        parser.error(f"--events must be at least {EVENTS_PER_LEAD}")
    env = {} if args.bootstrap and args.mongo_url else stack_env()
    if args.bootstrap:
        env["LEADTRAIL_KAFKA_BOOTSTRAP"] = args.bootstrap
    if args.mongo_url:
        env["LEADTRAIL_MONGO_URL"] = args.mongo_url
    result = await run(env, events=args.events, keep=args.keep)
    show(result)
    console.print(f"saved {save('replay', result)}")


if __name__ == "__main__":
    asyncio.run(main())
