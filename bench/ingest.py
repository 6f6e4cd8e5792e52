"""Benchmark: sustained ``POST /v1/leads`` against a running stack, beside a bare producer.

    make up DETACH=1
    .venv/bin/python bench/ingest.py --clients 32 --seconds 20

For ``--seconds`` it keeps ``--clients`` concurrent HTTP clients posting distinct leads and
records each request's latency (202 only after Kafka's ``acks=all``). Then, on the same broker
and in the same run, two baselines with the same concurrency for the same time:

* a bare aiokafka producer (``acks=all``, like the services') sending payloads of the same size;
* the bare HTTP producer (`bench/bare_http_producer.py`, its own process): FastAPI, uvicorn and
  aiokafka doing nothing but produce each posted body, driven by the same client. It is the
  ceiling of any HTTP ingest on this stack and machine.

The figure to read is the ratio of the throughputs; absolute numbers depend on the machine and
what else it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bench._common import bench_tenant, machine, save, stack_env, summary
from bench._http import BenchClient, TransportError
from devstack.process import free_port, tcp_open

console = Console()


def lead_body(n: int) -> dict[str, Any]:
    return {
        "source": {"kind": "web_form", "url": "https://bench.example/contact"},
        "contact": {
            "email": f"bench.{uuid.uuid4().hex[:12]}.{n}@example.org",
            "first_name": "Bench",
            "last_name": f"Person {n}",
            "company": "Bench Srl",
        },
        "consent": {
            "purposes": ["crm_sync", "marketing_email"],
            "notice_version": "2026-10",
            "given_at": "2026-11-02T09:15:03Z",
            "channel": "web_form",
        },
    }


async def run_clients(
    seconds: float, clients: int, work: Any, label: str
) -> tuple[list[float], float, int]:
    """Run ``work(n)`` from ``clients`` concurrent loops for ``seconds``; latencies of successes."""
    latencies: list[float] = []
    failures = 0
    counter = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def loop() -> None:
        nonlocal counter, failures
        while time.perf_counter() < deadline:
            counter += 1
            begin = time.perf_counter()
            if await work(counter):
                latencies.append(time.perf_counter() - begin)
            else:
                failures += 1

    with Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.fields[rate]:>8.0f}/s"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=seconds, rate=0.0)
        runners = [asyncio.create_task(loop()) for _ in range(clients)]
        while not all(r.done() for r in runners):
            await asyncio.sleep(0.25)
            elapsed = time.perf_counter() - started
            progress.update(task, completed=min(elapsed, seconds), rate=len(latencies) / elapsed)
        await asyncio.gather(*runners)
    return latencies, time.perf_counter() - started, failures


async def bench_http(url: str, headers: dict[str, str], seconds: float, clients: int) -> Any:
    """``clients`` loops posting distinct leads to ``url`` for ``seconds``."""
    async with BenchClient(url, connections=clients, timeout_s=30, headers=headers) as client:

        async def post(n: int) -> bool:
            try:
                status, _ = await client.post("/v1/leads", lead_body(n))
            except TransportError:
                return False
            return status == 202

        await post(0)  # warm-up: connections, the producer's metadata
        return await run_clients(seconds, clients, post, f"POST {url}/v1/leads")


@asynccontextmanager
async def bare_http_producer(bootstrap: str) -> AsyncIterator[str]:
    """`bench/bare_http_producer.py` in its own uvicorn process on a free port; its URL."""
    topic = f"bench-bare-http-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220, S603 (our own module, started once)
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_http_producer:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, "BARE_KAFKA_BOOTSTRAP": bootstrap, "BARE_TOPIC": topic},
    )
    try:
        deadline = time.monotonic() + 30
        while not tcp_open(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("bench/bare_http_producer.py did not start (see its output)")
            await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            await asyncio.to_thread(server.wait, 10)
        except subprocess.TimeoutExpired:
            server.kill()
        await admin.delete_topics([topic])
        await admin.close()


async def bench_producer(bootstrap: str, seconds: float, clients: int, size: int) -> Any:
    topic = f"bench-bare-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=0
    )
    await producer.start()
    payload = base64.b64encode(os.urandom(size))[:size]
    try:

        async def send(n: int) -> bool:
            await producer.send_and_wait(topic, payload, key=str(n).encode())
            return True

        await send(0)
        return await run_clients(seconds, clients, send, "bare aiokafka producer")
    finally:
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def run(env: dict[str, str], *, clients: int, seconds: float) -> dict[str, Any]:
    """The three phases on the stack ``env`` describes; the result as saved to bench/results."""
    api_key = bench_tenant(env, "bench", "Bench")
    await asyncio.sleep(0.2)  # the service reloads tenants.json on its next request
    api_latencies, api_elapsed, api_failures = await bench_http(
        env["LEADTRAIL_LEAD_INGEST_URL"], {"Authorization": f"Bearer {api_key}"}, seconds, clients
    )
    bootstrap = env["LEADTRAIL_KAFKA_BOOTSTRAP"]
    event_size = 1400  # a lead.captured envelope of these bodies is about this many bytes
    bare_latencies, bare_elapsed, _ = await bench_producer(bootstrap, seconds, clients, event_size)
    async with bare_http_producer(bootstrap) as url:
        http_latencies, http_elapsed, http_failures = await bench_http(url, {}, seconds, clients)
    api = summary(api_latencies, api_elapsed)
    bare = summary(bare_latencies, bare_elapsed)
    bare_http = summary(http_latencies, http_elapsed)
    return {
        "machine": machine(),
        "clients": clients,
        "seconds": seconds,
        "api": api,
        "api_failures": api_failures,
        "bare_producer": bare,
        "bare_http_producer": bare_http,
        "bare_http_failures": http_failures,
        "ratio": api["per_second"] / bare["per_second"] if bare["per_second"] else float("nan"),
        "ceiling_ratio": (
            bare_http["per_second"] / bare["per_second"] if bare["per_second"] else float("nan")
        ),
    }


def show(result: dict[str, Any]) -> None:
    api, bare = result["api"], result["bare_producer"]
    table = Table(title=f"ingest, {result['clients']} clients, {result['seconds']:g}s per phase")
    for column in ("", "per second", "p50 ms", "p99 ms", "failures"):
        table.add_column(column, justify="right")
    for label, figures, failures in (
        ("POST /v1/leads", api, result["api_failures"]),
        ("bare producer", bare, 0),
        ("bare HTTP producer", result["bare_http_producer"], result["bare_http_failures"]),
    ):
        table.add_row(
            label,
            f"{figures['per_second']:.0f}",
            f"{figures['p50_ms']:.1f}",
            f"{figures['p99_ms']:.1f}",
            str(failures),
        )
    console.print(table)
    console.print(
        f"ingest / bare producer throughput: [bold]{result['ratio']:.1%}[/bold];"
        f" the bare HTTP producer's (the ceiling): {result['ceiling_ratio']:.1%}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each phase")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be >= 1 and --seconds > 0")
    env = stack_env()
    if "LEADTRAIL_LEAD_INGEST_URL" not in env:
        parser.error("no lead-ingest URL in .run/stack.env: is `make up` running?")
    result = await run(env, clients=args.clients, seconds=args.seconds)
    show(result)
    console.print(f"saved {save('ingest', result)}")


if __name__ == "__main__":
    asyncio.run(main())
