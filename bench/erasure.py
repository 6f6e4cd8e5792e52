"""Benchmark: erasure completion time, from the request to ``erasure.completed``.

    make up DETACH=1
    .venv/bin/python -m bench.erasure --subjects 50 --rate 5

Captures ``--subjects`` leads with ``crm_sync`` consent and a qualifying answer for a tenant
whose CRM is a local HubSpot (tests/crm_fakes), waits until every one is in the CRM, then posts
an attested erasure request per subject at ``--rate`` per second. The time of each is from
sending the request to a consumer of ``erasure-events`` seeing its ``erasure.completed``: every
service's receipt is in, the CRM record deleted (R25). Beside it, in the same run, the latency
of one message from a bare ``acks=all`` producer to a consumer on the same broker: the floor
under each of the flow's hops (request, verification, erasure.requested, receipts, completed).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from bench._common import kafka_round_trip, machine, percentile, save, stack_env
from bench.crm_sync import TENANT, configure
from bench.e2e_latency import ANSWER, lead_body, wait_for_crm
from contracts import EventEnvelope
from services.common.logging import configure_logging
from tests.crm_fakes.hubspot import HubSpotFake

console = Console()


async def capture(client: httpx.AsyncClient, email: str) -> tuple[str, str]:
    """Post a consenting, qualifying lead; its subject and lead ids."""
    response = await client.post("/v1/leads", json=lead_body(email))
    response.raise_for_status()
    accepted = response.json()
    pause = 0.01
    while True:
        answer = await client.post(f"/v1/leads/{accepted['lead_id']}/interactions", json=ANSWER)
        if answer.status_code == 202:
            return str(accepted["subject_id"]), str(accepted["lead_id"])
        if answer.status_code != 404:
            answer.raise_for_status()
        pause = min(pause * 2, 0.2)
        await asyncio.sleep(pause)


async def completions(
    consumer: AIOKafkaConsumer, wanted: set[str], seen: dict[str, float], patience: float
) -> None:
    deadline = time.monotonic() + patience
    while wanted - seen.keys() and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            for record in records:
                event = EventEnvelope.model_validate_json(record.value)
                if (
                    event.type == "erasure.completed"
                    and event.tenant_id == TENANT
                    and event.subject_id in wanted
                ):
                    seen.setdefault(event.subject_id, time.monotonic())


async def request_erasure(client: httpx.AsyncClient, lead_id: str) -> None:
    """An erasure request for the lead's person, attested by the tenant (verified at once)."""
    response = await client.post(
        "/v1/privacy-requests",
        json={
            "type": "erasure",
            "subject": {"lead_id": lead_id},
            "verification": {"method": "tenant_attestation", "attested_by": "dpo@bench.example"},
        },
    )
    response.raise_for_status()


async def run(
    env: dict[str, str], *, subjects: int, rate: float, patience: float
) -> dict[str, Any]:
    marker = f"erase{uuid.uuid4().hex[:8]}"
    prefix = env["LEADTRAIL_TOPIC_PREFIX"]
    async with HubSpotFake.running() as hubspot:
        key = configure(env, hubspot.base_url)
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(
            base_url=env["LEADTRAIL_LEAD_INGEST_URL"],
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        ) as client:
            console.print(f"capturing {subjects} leads and waiting for the CRM ...")
            emails = [f"{marker}.{n}@example.org" for n in range(subjects)]
            leads = dict(await asyncio.gather(*(capture(client, email) for email in emails)))
            await wait_for_crm(hubspot, marker, subjects, patience)
            in_crm = len(hubspot.records)
            consumer = AIOKafkaConsumer(
                f"{prefix}erasure-events",
                bootstrap_servers=env["LEADTRAIL_KAFKA_BOOTSTRAP"],
                auto_offset_reset="latest",
                fetch_max_wait_ms=20,
            )
            await consumer.start()
            await consumer.getmany(timeout_ms=1000)  # joined and positioned at the end
            requested: dict[str, float] = {}
            seen: dict[str, float] = {}
            watcher = asyncio.create_task(completions(consumer, set(leads), seen, patience))
            try:
                console.print(f"requesting {subjects} erasures at {rate:g}/s ...")
                started = time.monotonic()
                for n, (subject_id, lead_id) in enumerate(leads.items()):
                    delay = started + n / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    requested[subject_id] = time.monotonic()
                    await request_erasure(client, lead_id)
                await watcher
            finally:
                watcher.cancel()
                await consumer.stop()
        left_in_crm = len(hubspot.records)
    baseline = await kafka_round_trip(env["LEADTRAIL_KAFKA_BOOTSTRAP"])
    times = [seen[s] - requested[s] for s in seen]
    return {
        "machine": machine(),
        "subjects": subjects,
        "rate": rate,
        "completed": len(seen),
        "crm_records_before": in_crm,
        "crm_records_after": left_in_crm,
        "p50_ms": percentile(times, 50) * 1000,
        "p99_ms": percentile(times, 99) * 1000,
        "max_ms": max(times, default=float("nan")) * 1000,
        "kafka_round_trip": baseline,
    }


def show(result: dict[str, Any]) -> None:
    table = Table(title=f"erasure, {result['subjects']} subjects at {result['rate']:g}/s")
    for column in ("", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    table.add_row(
        "request -> erasure.completed", f"{result['p50_ms']:.0f}", f"{result['p99_ms']:.0f}"
    )
    rtt = result["kafka_round_trip"]
    table.add_row("bare Kafka round trip", f"{rtt['p50_ms']:.1f}", f"{rtt['p99_ms']:.1f}")
    console.print(table)
    console.print(
        f"{result['completed']}/{result['subjects']} completed; CRM records"
        f" {result['crm_records_before']} -> {result['crm_records_after']}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5.0, help="erasure requests per second")
    parser.add_argument("--patience", type=float, default=600.0, help="max wait per phase")
    args = parser.parse_args()
    if args.subjects < 1 or args.rate <= 0 or args.patience <= 0:
        parser.error("--subjects must be >= 1, --rate and --patience > 0")
    configure_logging("bench", level="warning", fmt="console")
    result = await run(stack_env(), subjects=args.subjects, rate=args.rate, patience=args.patience)
    show(result)
    console.print(f"saved {save('erasure', result)}")


if __name__ == "__main__":
    asyncio.run(main())
