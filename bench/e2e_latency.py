"""Benchmark: end-to-end latency from the ingest API to the CRM, at a fixed offered rate.

    make up DETACH=1
    .venv/bin/python -m bench.e2e_latency --rate 500 --seconds 5

Open loop: every ``1/rate`` seconds a new simulated visitor posts a lead with ``crm_sync``
consent, then (as soon as the lead can be addressed) the qualifying answer, whatever happened
to the visitors before, up to ``IN_FLIGHT`` visitors at once (the achieved rate is reported).
A local HubSpot (tests/crm_fakes) stamps every request it receives. For each lead it reports:

* **qualifying POST -> CRM**: from sending the answer that qualifies the lead to the CRM
  receiving the upsert (scoring, qualification, consent check, crm-sync's outbox and call);
* **capture POST -> CRM**: from posting the lead, so including the wait until lead-ingest's
  read model has the lead and accepts the answer.

Beside them, in the same run, the latency of one message from a bare ``acks=all`` aiokafka
producer to a consumer on the same broker: the floor under each of the flow's five hops
(captured, interaction recorded, scored, qualified, CRM call). Leads not in the CRM within
``--patience`` are counted as missing, not dropped from the percentiles silently.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
import uuid
from typing import Any

from rich.console import Console
from rich.table import Table

from bench._common import kafka_round_trip, machine, percentile, save, stack_env
from bench._http import BenchClient, TransportError
from bench.crm_sync import configure
from services.common.logging import configure_logging
from tests.crm_fakes.hubspot import HubSpotFake

console = Console()
ANSWER = {"channel": "chat", "answers": {"budget": 5000}}


def lead_body(email: str) -> dict[str, Any]:
    return {
        "source": {"kind": "web_form", "url": "https://bench.example/e2e"},
        "contact": {"email": email, "last_name": "Bench", "company": "Bench Srl"},
        "consent": {
            "purposes": ["crm_sync"],
            "notice_version": "1",
            "given_at": "2026-11-01T00:00:00Z",
            "channel": "web_form",
        },
    }


def crm_receipts(hubspot: HubSpotFake, marker: str) -> dict[str, float]:
    """First time the CRM received each bench e-mail (contains ``marker``)."""
    first: dict[str, float] = {}
    for request in hubspot.requests:
        if request.method != "POST" or marker.encode() not in request.body:
            continue
        for value in _strings(json.loads(request.body)):
            if marker in value:
                first.setdefault(value, request.received_at)
    return first


async def wait_for_crm(
    hubspot: HubSpotFake, marker: str, count: int, patience: float
) -> dict[str, float]:
    """CRM receipts of the bench e-mails once ``count`` arrived, or what arrived in time."""
    deadline = time.monotonic() + patience
    receipts = crm_receipts(hubspot, marker)
    while len(receipts) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        receipts = crm_receipts(hubspot, marker)
    return receipts


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


async def post(client: BenchClient, path: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
    """POST like a careful client: with an Idempotency-Key, again after a dropped connection."""
    for attempt in range(3):
        try:
            return await client.post(path, body, headers={"Idempotency-Key": key})
        except TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


IN_FLIGHT = 256
"""Visitors talking to the API at once, as many as the client's connections. (With httpx,
which this used before bench/_http.py, more would queue inside httpcore's pool, whose request
assignment is quadratic in the queue: 2,500 queued requests stalled a run with the client at
full CPU and nothing sent.)"""


async def visitor(  # noqa: PLR0917 (one task per visitor, all it shares passed in)
    client: BenchClient,
    email: str,
    sent: dict[str, tuple[float, float]],
    errors: list[str],
    in_flight: asyncio.Semaphore,
    starts: list[float],
) -> None:
    async with in_flight:
        starts.append(time.monotonic())
        try:
            await _visit(client, email, sent, errors)
        except TransportError as error:
            errors.append(type(error).__name__)


async def _visit(
    client: BenchClient, email: str, sent: dict[str, tuple[float, float]], errors: list[str]
) -> None:
    captured_at = time.monotonic()
    status, body = await post(client, "/v1/leads", lead_body(email), f"lead-{email}")
    if status != 202:
        errors.append(f"capture {status}")
        return
    lead_id = body["lead_id"]
    pause = 0.01
    for attempt in itertools.count():
        answered_at = time.monotonic()
        path = f"/v1/leads/{lead_id}/interactions"
        answer_status, _ = await post(client, path, ANSWER, f"answer-{attempt}-{email}")
        if answer_status == 202:
            sent[email] = (captured_at, answered_at)
            return
        if answer_status != 404:
            errors.append(f"interaction {answer_status}")
            return
        # The lead reaches the read model a moment after its 202; back off while it does not,
        # up to a second (as a person would take): polling every 0.2 s from 256 visitors kept
        # the API answering 404s and starved the very projection they waited for.
        pause = min(pause * 2, 1.0)
        await asyncio.sleep(pause)


async def run(
    env: dict[str, str], *, rate: float, seconds: float, patience: float
) -> dict[str, Any]:
    marker = f"e2e{uuid.uuid4().hex[:8]}"
    sent: dict[str, tuple[float, float]] = {}
    errors: list[str] = []
    starts: list[float] = []
    in_flight = asyncio.Semaphore(IN_FLIGHT)
    async with HubSpotFake.running() as hubspot:
        key = configure(env, hubspot.base_url)
        await asyncio.sleep(0.5)
        async with BenchClient(
            env["LEADTRAIL_LEAD_INGEST_URL"],
            connections=IN_FLIGHT,
            timeout_s=120,
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            total = max(1, round(rate * seconds))
            started = time.monotonic()
            visitors = []
            for n in range(total):
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                email = f"{marker}.{n}@example.org"
                visitors.append(
                    asyncio.create_task(visitor(client, email, sent, errors, in_flight, starts))
                )
            await asyncio.gather(*visitors)
            # Achieved: how fast visitors actually started posting (IN_FLIGHT bounds it when
            # the API answers slower than the target rate asks).
            offered = len(starts) / max(max(starts) - started, 1 / rate)
        receipts = await wait_for_crm(hubspot, marker, len(sent), patience)
    baseline = await kafka_round_trip(env["LEADTRAIL_KAFKA_BOOTSTRAP"])
    from_answer = [receipts[e] - sent[e][1] for e in sent if e in receipts]
    from_capture = [receipts[e] - sent[e][0] for e in sent if e in receipts]
    return {
        "machine": machine(),
        "target_rate": rate,
        "offered_rate": offered,
        "seconds": seconds,
        "leads": total,
        "accepted": len(sent),
        "in_crm": len(receipts),
        "errors": sorted(set(errors)),
        "answer_to_crm_p50_ms": percentile(from_answer, 50) * 1000,
        "answer_to_crm_p99_ms": percentile(from_answer, 99) * 1000,
        "capture_to_crm_p50_ms": percentile(from_capture, 50) * 1000,
        "capture_to_crm_p99_ms": percentile(from_capture, 99) * 1000,
        "kafka_round_trip": baseline,
    }


def show(result: dict[str, Any]) -> None:
    table = Table(
        title=f"POST -> CRM at {result['target_rate']:g} leads/s offered for {result['seconds']:g}s"
    )
    for column in ("", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for label, key in (("qualifying POST -> CRM", "answer"), ("capture POST -> CRM", "capture")):
        table.add_row(
            label, f"{result[f'{key}_to_crm_p50_ms']:.0f}", f"{result[f'{key}_to_crm_p99_ms']:.0f}"
        )
    rtt = result["kafka_round_trip"]
    table.add_row("bare Kafka round trip", f"{rtt['p50_ms']:.1f}", f"{rtt['p99_ms']:.1f}")
    console.print(table)
    console.print(
        f"offered {result['offered_rate']:.0f}/s; {result['accepted']}/{result['leads']} accepted,"
        f" {result['in_crm']} in the CRM; errors: {result['errors'] or 'none'}"
    )
    if any(" 429" in error for error in result["errors"]):
        console.print(
            "429: lead-ingest's per-tenant rate limit answered; `make bench` starts its stack with"
            " LEADTRAIL_RATE_LIMIT_PER_S=2000 (see bench/report.py)"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="leads per second offered")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long leads are offered")
    parser.add_argument("--patience", type=float, default=600.0, help="max wait for the CRM")
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.patience <= 0:
        parser.error("--rate, --seconds and --patience must be > 0")
    configure_logging("bench", level="warning", fmt="console")
    result = await run(stack_env(), rate=args.rate, seconds=args.seconds, patience=args.patience)
    show(result)
    console.print(f"saved {save('e2e_latency', result)}")


if __name__ == "__main__":
    asyncio.run(main())
