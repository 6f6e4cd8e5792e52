"""Round trips: store commands and Kafka offset commits per lead and per erasure (issue 14).

    .venv/bin/python -m bench.roundtrips                  # fresh stack, 200 leads, 50 erasures
    .venv/bin/python -m bench.roundtrips --leads 50 --erasures 20
    .venv/bin/python -m bench.roundtrips --clients 32    # more requests in flight at once

Starts a fresh stack of its own under ``.run/bench-roundtrips`` (as ``bench.size`` does) and a
local HubSpot (tests/crm_fakes) for a ``bench-crm`` tenant, then reads every service's
``leadtrail_store_commands_total`` and ``leadtrail_kafka_offset_commits_total`` from
``/metrics`` around each phase:

1. **idle**: nothing posted for ``--idle-seconds``: what the services send on their own
   (pollers, tickers), per second;
2. **capture**: ``--leads`` leads posted (``POST /v1/leads``), until every consumer group has
   committed everything on every topic;
3. **qualify + CRM push**: one qualifying interaction per lead, until every lead is in the CRM
   and every group is caught up;
4. **erasure**: ``--erasures`` of those subjects erased through attested privacy requests,
   until each ``erasure.completed`` is seen and every group is caught up.

Each phase's difference, per service, command and collection, divided by the leads (or
erasures), is its cost. "Caught up" is read from Kafka (committed offsets against end offsets),
not from ``/metrics``, so waiting costs no store command. The one scrape per phase that ends it
may cost a read (erasure-propagator's open-erasure gauges count in the store again after it
handled erasure events, or when the count is 30 s old): at most one command per phase, left in.
What back-to-back scrapes cost (next to nothing since they are cached) is still measured and
taken off every figure. Background work that runs while a phase runs (the
idle figure, times the phase's duration) is shown beside each phase, not taken off: it is part
of what the cluster sends. Writes ``bench/results/roundtrips.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench._common import ROOT, machine, save, stack_env
from bench.crm_sync import configure
from bench.e2e_latency import ANSWER, lead_body, wait_for_crm
from bench.erasure import completions, request_erasure
from devstack.stack import SERVICES, stack_down, stack_up
from services.common.logging import configure_logging
from tests.crm_fakes.hubspot import HubSpotFake

console = Console()
RUN_ROOT = ROOT / ".run" / "bench-roundtrips"
STORE = "leadtrail_store_commands_total"
COMMITS = "leadtrail_kafka_offset_commits_total"
SCRAPES = 5

Key = tuple[str, str, str]
"""(metric, service, detail): detail is ``command collection`` or the consumer group."""
Snapshot = dict[Key, float]


async def scrape(client: httpx.AsyncClient, url: str) -> Snapshot:
    text = (await client.get(f"{url}/metrics")).raise_for_status().text
    found: Snapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == STORE:
                detail = f"{labels['command']} {labels['collection']}".strip()
            elif sample.name == COMMITS:
                detail = labels["group"]
            else:
                continue
            found[sample.name, labels["service"], detail] = sample.value
    return found


async def snapshot(client: httpx.AsyncClient, env: dict[str, str]) -> Snapshot:
    found: Snapshot = {}
    for part in await asyncio.gather(*(scrape(client, env[s.env_name]) for s in SERVICES)):
        found.update(part)
    return found


def delta(after: Snapshot, before: Snapshot) -> Snapshot:
    return {
        key: value - before.get(key, 0.0)
        for key, value in after.items()
        if value - before.get(key, 0.0) > 0
    }


def minus(values: Snapshot, other: Snapshot) -> Snapshot:
    """``values - other``, dropping what falls to 0 or below."""
    left = {key: value - other.get(key, 0.0) for key, value in values.items()}
    return {key: value for key, value in left.items() if value > 0}


def scale(values: Snapshot, factor: float) -> Snapshot:
    return {key: value * factor for key, value in values.items()}


async def caught_up(bootstrap: str, patience: float) -> None:
    """Until every consumer group of the stack has committed up to the end of every partition
    it reads (a Kafka question: no store command is sent to answer it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    deadline = time.monotonic() + patience
    try:
        while True:
            behind = 0
            for group, _ in await admin.list_consumer_groups():
                committed = await admin.list_consumer_group_offsets(group)
                partitions = list(committed)
                ends = await consumer.end_offsets(partitions) if partitions else {}
                behind += sum(
                    max(0, ends[tp] - (meta.offset if meta.offset >= 0 else 0))
                    for tp, meta in committed.items()
                    if isinstance(tp, TopicPartition)
                )
            if behind == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer groups still {behind} records behind")
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
        await admin.close()


async def phase(
    name: str,
    client: httpx.AsyncClient,
    env: dict[str, str],
    work: Callable[[], Awaitable[None]],
    patience: float,
) -> tuple[Snapshot, float]:
    """The counters' increase over ``work`` and the catching up after it; and its seconds."""
    console.print(f"[bold]{name}[/bold] ...")
    before = await snapshot(client, env)
    started = time.monotonic()
    await work()
    await caught_up(env["LEADTRAIL_KAFKA_BOOTSTRAP"], patience)
    seconds = time.monotonic() - started
    return delta(await snapshot(client, env), before), seconds


def per_unit(values: Snapshot, units: int) -> dict[str, Any]:
    """Totals per unit (lead or erasure): store commands and offset commits, whole cluster, per
    service, and per service and command."""
    store: dict[str, float] = defaultdict(float)
    commits: dict[str, float] = defaultdict(float)
    commands: dict[str, dict[str, float]] = defaultdict(dict)
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for (metric, service, detail), value in sorted(values.items()):
        if metric == STORE:
            store[service] += value / units
            commands[service][detail] = round(value / units, 3)
        else:
            commits[service] += value / units
            groups[service][detail] = round(value / units, 3)
    return {
        "store_commands": round(sum(store.values()), 2),
        "offset_commits": round(sum(commits.values()), 2),
        "store_commands_by_service": {k: round(v, 2) for k, v in sorted(store.items())},
        "offset_commits_by_service": {k: round(v, 2) for k, v in sorted(commits.items())},
        "store_commands_by_command": dict(sorted(commands.items())),
        "offset_commits_by_group": dict(sorted(groups.items())),
    }


def per_second(values: Snapshot, seconds: float) -> dict[str, Any]:
    figures = per_unit(values, 1)
    for name in ("store_commands", "offset_commits"):
        figures[name] = round(figures[name] / seconds, 3)
        by_service = figures[f"{name}_by_service"]
        figures[f"{name}_by_service"] = {k: round(v / seconds, 3) for k, v in by_service.items()}
    figures.pop("store_commands_by_command")
    figures.pop("offset_commits_by_group")
    figures["by_command"] = {
        service: {command: round(v / seconds, 3) for command, v in commands.items()}
        for service, commands in per_unit(values, 1)["store_commands_by_command"].items()
    }
    return figures


class Workload:
    """The leads of one run: captured, qualified and pushed, some erased."""

    def __init__(
        self,
        env: dict[str, str],
        api: httpx.AsyncClient,
        hubspot: HubSpotFake,
        patience: float,
        clients: int,
    ) -> None:
        self.env = env
        self.api = api
        self.hubspot = hubspot
        self.patience = patience
        self.marker = f"rt{uuid.uuid4().hex[:8]}"
        self.accepted: dict[str, str] = {}  # lead id -> subject id
        self.semaphore = asyncio.Semaphore(clients)
        """``clients`` requests in flight at most, in every phase."""

    async def capture_all(self, leads: int) -> None:
        async def capture(n: int) -> None:
            async with self.semaphore:
                body = lead_body(f"{self.marker}.{n}@example.org")
                response = (await self.api.post("/v1/leads", json=body)).raise_for_status()
                accepted = response.json()
                self.accepted[str(accepted["lead_id"])] = str(accepted["subject_id"])

        await asyncio.gather(*(capture(n) for n in range(leads)))

    async def qualify_all(self) -> None:
        async def qualify(lead_id: str) -> None:
            async with self.semaphore:
                for _ in range(600):  # projected already (caught up): the first try, normally
                    answer = await self.api.post(f"/v1/leads/{lead_id}/interactions", json=ANSWER)
                    if answer.status_code == 202:
                        return
                    if answer.status_code != 404:
                        answer.raise_for_status()
                    await asyncio.sleep(0.1)
                raise TimeoutError(f"lead {lead_id} never accepted an interaction")

        await asyncio.gather(*(qualify(lead_id) for lead_id in self.accepted))
        got = await wait_for_crm(self.hubspot, self.marker, len(self.accepted), self.patience)
        if len(got) < len(self.accepted):
            raise TimeoutError(f"only {len(got)}/{len(self.accepted)} leads reached the CRM")

    async def erase_all(self, erasures: int) -> None:
        erased = dict(list(self.accepted.items())[:erasures])
        consumer = AIOKafkaConsumer(
            f"{self.env['LEADTRAIL_TOPIC_PREFIX']}erasure-events",
            bootstrap_servers=self.env["LEADTRAIL_KAFKA_BOOTSTRAP"],
            auto_offset_reset="latest",
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=1000)  # joined, positioned at the end
            seen: dict[str, float] = {}
            wanted = set(erased.values())
            watcher = asyncio.create_task(completions(consumer, wanted, seen, self.patience))

            async def request(lead_id: str) -> None:
                async with self.semaphore:
                    await request_erasure(self.api, lead_id)

            await asyncio.gather(*(request(lead_id) for lead_id in erased))
            await watcher
            if len(seen) < len(wanted):
                raise TimeoutError(f"only {len(seen)}/{len(wanted)} erasures completed")
        finally:
            await consumer.stop()


async def run(
    env: dict[str, str],
    *,
    leads: int,
    erasures: int,
    idle_seconds: float,
    patience: float,
    clients: int = 8,
) -> dict[str, Any]:
    bootstrap = env["LEADTRAIL_KAFKA_BOOTSTRAP"]
    async with HubSpotFake.running() as hubspot, httpx.AsyncClient(timeout=60) as scraper:
        key = configure(env, hubspot.base_url)
        await asyncio.sleep(0.5)
        await caught_up(bootstrap, patience)
        console.print(f"[bold]idle[/bold] for {idle_seconds:g}s ...")
        before = await snapshot(scraper, env)
        await asyncio.sleep(idle_seconds)
        after = await snapshot(scraper, env)
        # The cost of one scrape: each phase's difference holds exactly one (the one ending
        # it). Measured over back-to-back scrapes, less what idle services sent meanwhile.
        began = time.monotonic()
        last = after
        for _ in range(SCRAPES):
            last = await snapshot(scraper, env)
        scrapes, scrapes_s = delta(last, after), time.monotonic() - began
        idle_raw = delta(after, before)
        idle = scale(idle_raw, 1 / idle_seconds)  # per second, first guess
        for _ in range(2):
            scrape_cost = scale(minus(scrapes, scale(idle, scrapes_s)), 1 / SCRAPES)
            idle = scale(minus(idle_raw, scrape_cost), 1 / idle_seconds)
        async with httpx.AsyncClient(
            base_url=env["LEADTRAIL_LEAD_INGEST_URL"],
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        ) as api:
            work = Workload(env, api, hubspot, patience, clients)
            captured, capture_s = await phase(
                "capture", scraper, env, lambda: work.capture_all(leads), patience
            )
            pushed, push_s = await phase(
                "qualify + CRM push", scraper, env, work.qualify_all, patience
            )
            erased, erase_s = await phase(
                "erasure", scraper, env, lambda: work.erase_all(erasures), patience
            )

    def figures(values: Snapshot, seconds: float, units: int) -> dict[str, Any]:
        result = per_unit(minus(values, scrape_cost), units)
        result["seconds"] = round(seconds, 1)
        background = per_unit(scale(idle, seconds), units)
        result["of_which_idle_background"] = background["store_commands"]
        result["raw"] = {" ".join(key): value for key, value in sorted(values.items())}
        return result

    return {
        "machine": machine(),
        "leads": leads,
        "erasures": erasures,
        "clients": clients,
        "idle_seconds": idle_seconds,
        "idle_per_second": per_second(idle, 1.0),
        "per_lead_capture": figures(captured, capture_s, leads),
        "per_lead_qualify_push": figures(pushed, push_s, leads),
        "per_erasure": figures(erased, erase_s, erasures),
        "scrape_cost": per_unit(scrape_cost, 1)["store_commands_by_command"],
    }


def show(result: dict[str, Any]) -> None:
    sections = [
        ("idle, per second", result["idle_per_second"]),
        ("per lead: capture", result["per_lead_capture"]),
        ("per lead: qualify + CRM push", result["per_lead_qualify_push"]),
        ("per erasure", result["per_erasure"]),
    ]
    services = [s.name for s in SERVICES]
    table = Table(
        title=f"store round trips ({result['leads']} leads, {result['erasures']} erasures, "
        f"{result.get('clients', 8)} clients)"
    )
    table.add_column("")
    for service in services:
        table.add_column(service, justify="right")
    table.add_column("cluster", justify="right")
    table.add_column("offset commits", justify="right")
    for title, figures in sections:
        by_service = figures["store_commands_by_service"]
        table.add_row(
            title,
            *(f"{by_service.get(service, 0):.2f}" for service in services),
            f"{figures['store_commands']:.2f}",
            f"{figures['offset_commits']:.2f}",
        )
    console.print(table)
    for title, figures in sections[1:]:
        console.print(
            f"{title}: {figures['seconds']}s, of which idle background "
            f"{figures['of_which_idle_background']:.2f} store commands per unit"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--erasures", type=int, default=50, help="subjects erased (<= leads)")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--patience", type=float, default=900.0, help="max wait per phase")
    parser.add_argument(
        "--clients", type=int, default=8, help="requests in flight at most (every phase)"
    )
    args = parser.parse_args()
    if args.leads < 1 or not 1 <= args.erasures <= args.leads:
        parser.error("--leads must be >= 1 and --erasures between 1 and --leads")
    if args.clients < 1:
        parser.error("--clients must be >= 1")
    if args.idle_seconds <= 0 or args.patience <= 0:
        parser.error("--idle-seconds and --patience must be > 0")
    configure_logging("bench", level="warning", fmt="console")
    stack_down(RUN_ROOT)
    for part in ("kafka", "mongo", "config", "logs"):
        shutil.rmtree(RUN_ROOT / part, ignore_errors=True)
    console.print(f"starting a fresh stack under {RUN_ROOT} ...")
    stack_up(RUN_ROOT)
    env = stack_env(RUN_ROOT)
    try:
        result = asyncio.run(
            run(
                env,
                leads=args.leads,
                erasures=args.erasures,
                idle_seconds=args.idle_seconds,
                patience=args.patience,
                clients=args.clients,
            )
        )
    finally:
        stack_down(RUN_ROOT)
    show(result)
    console.print(f"saved {save('roundtrips', result)}")


if __name__ == "__main__":
    main()
