"""Benchmark: what sealing events costs the publisher, and how fast ``leadtrail verify`` reads.

    .venv/bin/python -m bench.sealing --clients 32 --seconds 10

Needs only Kafka (``LEADTRAIL_KAFKA_BOOTSTRAP`` or a stack started by ``make up``); it creates
fresh topics under its own prefix. Three phases on the same broker, in one run:

1. ``--clients`` concurrent loops publish events through ``EventPublisher.build`` and a plain
   ``broker.publish`` that awaits ``acks=all`` (what publishing was before sealing);
2. the same through ``EventPublisher.publish`` (sealed, chained, enqueued under the lock);
3. ``leadtrail verify``'s reader and verifier over everything phase 2 wrote.

Phases 1 and 2 alternate ``--rounds`` times. The figures to read are the ratio of 2 to 1 and
verify's events per second.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
import uuid

from rich.console import Console
from rich.table import Table

from bench._common import machine, save, stack_env, summary
from bench.ingest import run_clients
from contracts import REGISTRY
from contracts.events.retention import RetentionHoldPlacedV1
from contracts.topics import ALL_TOPICS, RETENTION_EVENTS
from ops.verify import Verifier, read_log
from services.common.broker import make_broker
from services.common.clock import SystemClock
from services.common.crypto import InMemoryDataKeyring, PiiCipher
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings
from services.common.topics import ensure_topics

console = Console()


def event(n: int) -> RetentionHoldPlacedV1:
    return RetentionHoldPlacedV1(
        hold_id=f"hold_{n:016x}", scope="subject", reason=f"bench case {n}", placed_by="bench"
    )


def _add(
    total: tuple[list[float], float, int], more: tuple[list[float], float, int]
) -> tuple[list[float], float, int]:
    """Latencies, elapsed seconds and failures of two runs of one phase, together."""
    return total[0] + more[0], total[1] + more[1], total[2] + more[2]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent publishers")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    parser.add_argument("--rounds", type=int, default=2, help="unsealed/sealed alternations")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--clients and --rounds must be >= 1 and --seconds > 0")
    env = stack_env()
    key = base64.b64encode(os.urandom(32)).decode()
    settings = CommonSettings(
        kafka_bootstrap=env["LEADTRAIL_KAFKA_BOOTSTRAP"],
        topic_prefix=f"bench-seal-{uuid.uuid4().hex[:8]}.",
        kek=key,
        integrity_key=key,
    )
    await ensure_topics(settings.kafka_bootstrap, settings.topic_prefix, ALL_TOPICS)
    broker = make_broker(settings, client_id="bench-sealing")
    await broker.start()
    publisher = EventPublisher(
        broker=broker,
        settings=settings,
        registry=REGISTRY,
        cipher=PiiCipher(InMemoryDataKeyring()),
        clock=SystemClock(),
        producer="bench",
    )
    try:
        # The unsealed phase writes to a topic of the same shape under a second prefix.
        other_prefix = f"{settings.topic_prefix}unsealed."
        await ensure_topics(settings.kafka_bootstrap, other_prefix, [RETENTION_EVENTS])

        async def unsealed(n: int) -> bool:
            envelope = await publisher.build(
                event(n), tenant_id="bench", subject_id=f"sub-{n}", correlation_id="bench"
            )
            await broker.publish(
                envelope.model_dump_json().encode(),
                topic=RETENTION_EVENTS.physical(other_prefix),
                key=envelope.kafka_key(),
                headers=envelope.kafka_headers(),
            )
            return True

        async def sealed(n: int) -> bool:
            await publisher.publish(
                event(n), tenant_id="bench", subject_id=f"sub-{n}", correlation_id="bench"
            )
            return True

        await unsealed(0)  # warm-up: the producer's metadata for both topics
        await sealed(0)
        before: tuple[list[float], float, int] = ([], 0.0, 0)
        after: tuple[list[float], float, int] = ([], 0.0, 0)
        for _ in range(args.rounds):  # alternating, so drift in the machine's load hits both
            before = _add(
                before, await run_clients(args.seconds, args.clients, unsealed, "unsealed")
            )
            after = _add(after, await run_clients(args.seconds, args.clients, sealed, "sealed"))
    finally:
        await broker.stop()

    physical = settings.topic(RETENTION_EVENTS.name)
    verifier = Verifier(settings.integrity_key_bytes())
    started = time.perf_counter()
    async for record in read_log(settings.kafka_bootstrap, {physical: RETENTION_EVENTS.name}):
        verifier.add(record)
    report = verifier.report()
    verify_s = time.perf_counter() - started
    verified = report.topics[RETENTION_EVENTS.name].sealed

    result = {
        "machine": machine(),
        "clients": args.clients,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "unsealed": summary(before[0], before[1]) | {"failures": before[2]},
        "sealed": summary(after[0], after[1]) | {"failures": after[2]},
        "verify": {
            "events": verified,
            "seconds": verify_s,
            "per_second": verified / verify_s,
            "clean": report.clean,
        },
    }
    ratio = result["sealed"]["per_second"] / result["unsealed"]["per_second"]
    result["sealed_vs_unsealed"] = ratio
    table = Table(
        title=f"sealing, {args.clients} clients, {args.rounds} x {args.seconds:.0f} s per phase"
    )
    for column in ("phase", "events/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for phase in ("unsealed", "sealed"):
        figures = result[phase]
        table.add_row(
            phase,
            f"{figures['per_second']:.0f}",
            f"{figures['p50_ms']:.1f}",
            f"{figures['p99_ms']:.1f}",
        )
    console.print(table)
    console.print(f"sealed / unsealed throughput: {ratio:.2f}")
    console.print(
        f"verify: {verified} events in {verify_s:.1f} s ({verified / verify_s:.0f}/s), "
        f"{'clean' if report.clean else f'{len(report.findings)} finding(s)'}"
    )
    console.print(f"saved {save('sealing', result)}")


if __name__ == "__main__":
    asyncio.run(main())
