"""Benchmark: qualified leads pushed through crm-sync into a local CRM, beside the bare adapter.

    make up DETACH=1
    .venv/bin/python -m bench.crm_sync --leads 200 --clients 16

Starts a local HubSpot (tests/crm_fakes) on loopback, points a ``bench-crm`` tenant's crm.yaml
at it (the token in a file the running crm-sync reads), posts leads with a qualifying answer
through the ingest API, and reads ``lead.qualified`` and ``crm.lead_synced`` from Kafka. Reports
leads/s pushed (first qualification to last CRM confirmation) and the lag from
``lead.qualified`` to the CRM's confirmation (p50/p99), beside the throughput of the same HubSpot
adapter calling the same local server directly in the same run.

Run it on a stack without a backlog (a fresh ``make up``): leads queue behind whatever the
services have not processed yet. Leads are posted during the run, so leads/s is bounded by the
whole pipeline upstream of crm-sync (capture, projection, interaction, scoring); the lag is
crm-sync's own share.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from bench._common import bench_tenant, machine, percentile, save, stack_env
from contracts import EventEnvelope
from services.common.logging import configure_logging
from services.crm_sync.adapters.base import build_adapter
from services.crm_sync.adapters.config import ConnectionConfig
from tests.crm_fakes.hubspot import DEFAULT_TOKEN, HubSpotFake
from tests.crm_fakes.samples import sample_contact

console = Console()
TENANT = "bench-crm"
RULES = {
    "version": 1,
    "threshold": 10,
    "criteria": [{"id": "budget", "answer": "budget", "op": "gte", "value": 1000, "points": 10}],
}


def configure(env: dict[str, str], base_url: str) -> str:
    """The ``bench-crm`` tenant with scoring rules and a HubSpot connection to ``base_url``;
    returns a fresh API key."""
    key = bench_tenant(env, TENANT, "Bench CRM")
    config_dir = Path(env["LEADTRAIL_CONFIG_DIR"])
    tenant_dir = config_dir / "tenants" / TENANT
    tenant_dir.mkdir(parents=True, exist_ok=True)
    token = tenant_dir / "hubspot.token"
    token.write_text(DEFAULT_TOKEN)
    token.chmod(0o600)
    (tenant_dir / "scoring.yaml").write_text(yaml.safe_dump(RULES))
    (tenant_dir / "crm.yaml").write_text(
        yaml.safe_dump(
            {
                "connections": [
                    {
                        "id": "hubspot-bench",
                        "recipient": {"name": "Local HubSpot", "location": "127.0.0.1"},
                        "adapter": {
                            "kind": "hubspot",
                            "base_url": base_url,
                            "secret_file": str(token),
                        },
                    }
                ]
            }
        )
    )
    return key


async def post_leads(url: str, key: str, leads: int, clients: int, ours: set[str]) -> None:
    """Post ``leads`` leads with their qualifying answer; each accepted lead's id goes into
    ``ours`` (before any event of it can be qualified)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(leads):
        queue.put_nowait(n)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                body = {
                    "source": {"kind": "web_form", "url": "https://bench.example/f"},
                    "contact": {
                        "email": f"crm.{uuid.uuid4().hex[:10]}.{n}@example.org",
                        "last_name": "Bench",
                        "company": "Bench Srl",
                    },
                    "consent": {
                        "purposes": ["crm_sync"],
                        "notice_version": "1",
                        "given_at": "2026-11-01T00:00:00Z",
                        "channel": "web_form",
                    },
                }
                lead = (await client.post("/v1/leads", json=body)).json()
                ours.add(lead["lead_id"])
                for _ in range(200):
                    answer = await client.post(
                        f"/v1/leads/{lead['lead_id']}/interactions",
                        json={"channel": "chat", "answers": {"budget": 5000}},
                    )
                    if answer.status_code == 202:
                        break
                    await asyncio.sleep(0.05)  # the lead is projected a moment after its 202

        await asyncio.gather(*(worker() for _ in range(clients)))


async def collect(
    env: dict[str, str], leads: int, patience: float, ours: set[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """When each of this run's leads was qualified and synced. The topics are read from the
    start, and the bench tenant's leads of earlier benchmarks are on them: only ``ours``
    count."""
    prefix = env["LEADTRAIL_TOPIC_PREFIX"]
    consumer = AIOKafkaConsumer(
        f"{prefix}lead-events",
        f"{prefix}crm-events",
        bootstrap_servers=env["LEADTRAIL_KAFKA_BOOTSTRAP"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    qualified: dict[str, Any] = {}
    synced: dict[str, Any] = {}
    deadline = time.monotonic() + patience
    try:
        while len(synced) < leads and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = EventEnvelope.model_validate_json(record.value)
                    if event.tenant_id != TENANT or event.data.get("lead_id") not in ours:
                        continue
                    if event.type == "lead.qualified":
                        qualified[event.data["lead_id"]] = event.occurred_at
                    elif event.type == "crm.lead_synced" and event.data["created"]:
                        synced[event.data["lead_id"]] = event.occurred_at
    finally:
        await consumer.stop()
    return qualified, synced


async def bare_adapter(base_url: str, calls: int, clients: int, token_file: Path) -> float:
    adapter = build_adapter(
        ConnectionConfig(id="bare", kind="hubspot", base_url=base_url, secret_file=token_file)
    )
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(calls):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            await adapter.upsert(
                sample_contact(email=f"bare{n}@example.org", lead_id=f"lead_bare{n}"), None
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await adapter.aclose()
    return calls / elapsed


async def run(env: dict[str, str], *, leads: int, clients: int, patience: float) -> dict[str, Any]:
    async with HubSpotFake.running() as hubspot:
        key = configure(env, hubspot.base_url)
        await asyncio.sleep(0.5)
        console.print(f"posting {leads} leads through {env['LEADTRAIL_LEAD_INGEST_URL']} ...")
        ours: set[str] = set()
        collector = asyncio.create_task(collect(env, leads, patience, ours))
        await post_leads(env["LEADTRAIL_LEAD_INGEST_URL"], key, leads, clients, ours)
        qualified, synced = await collector
        token = Path(env["LEADTRAIL_CONFIG_DIR"]) / "tenants" / TENANT / "hubspot.token"
        bare_rate = await bare_adapter(hubspot.base_url, leads, clients, token)
    lags = [(synced[k] - qualified[k]).total_seconds() for k in synced if k in qualified]
    window = (max(synced.values()) - min(qualified.values())).total_seconds() if synced else 0
    rate = len(synced) / window if window else 0.0
    return {
        "machine": machine(),
        "leads": leads,
        "clients": clients,
        "pushed": len(synced),
        "leads_per_s": rate,
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "bare_adapter_per_s": bare_rate,
        "ratio": rate / bare_rate if bare_rate else float("nan"),
    }


def show(result: dict[str, Any]) -> None:
    table = Table(title=f"crm-sync, {result['leads']} leads, {result['clients']} clients")
    for column in ("", "leads/s", "lag p50 ms", "lag p99 ms", "pushed"):
        table.add_column(column, justify="right")
    table.add_row(
        "through crm-sync",
        f"{result['leads_per_s']:.1f}",
        f"{result['lag_p50_ms']:.0f}",
        f"{result['lag_p99_ms']:.0f}",
        f"{result['pushed']}/{result['leads']}",
    )
    table.add_row("bare adapter", f"{result['bare_adapter_per_s']:.1f}", "-", "-", "")
    console.print(table)
    console.print(f"crm-sync / bare adapter: [bold]{result['ratio']:.2f}[/bold]")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    if args.leads < 1 or args.clients < 1:
        parser.error("--leads and --clients must be >= 1")
    configure_logging("bench", level="warning", fmt="console")  # the adapter logs every call
    result = await run(stack_env(), leads=args.leads, clients=args.clients, patience=args.timeout)
    show(result)
    console.print(f"saved {save('crm_sync', result)}")


if __name__ == "__main__":
    asyncio.run(main())
