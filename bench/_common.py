"""Shared plumbing of the benchmarks: finding the running stack, percentiles, reports."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.kafka import KAFKA_VERSION
from devstack.mongo_server import MONGO_JAVA_SERVER_VERSION
from services.common.tenants import TenantDirectory

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def stack_env(run_root: Path = ROOT / ".run") -> dict[str, str]:
    """Settings of the stack started by ``make up`` (environment variables win)."""
    values: dict[str, str] = {}
    for name in ("stack.env", "secrets.env"):
        path = run_root / name
        if path.is_file():
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values[key] = value
    values.update({k: v for k, v in os.environ.items() if k.startswith("LEADTRAIL_")})
    if "LEADTRAIL_KAFKA_BOOTSTRAP" not in values:
        sys.exit("no running stack: start one with `make up DETACH=1` (or set LEADTRAIL_* vars)")
    return values


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies_s: list[float], elapsed_s: float) -> dict[str, float]:
    return {
        "count": len(latencies_s),
        "per_second": len(latencies_s) / elapsed_s if elapsed_s else 0.0,
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "mean_ms": statistics.fmean(latencies_s) * 1000 if latencies_s else float("nan"),
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on: they only mean something beside this."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory": _proc_field("/proc/meminfo", "MemTotal"),
        "java": _java_version(),
        "kafka": KAFKA_VERSION,
        "store": f"mongo-java-server {MONGO_JAVA_SERVER_VERSION} (H2 backend, commit per write)",
        "load_average": " ".join(f"{n:.2f}" for n in os.getloadavg()),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _proc_field(path: str, name: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == name:
                return value.strip()
    except OSError:
        return None
    return None


def _java_version() -> str | None:
    java = shutil.which("java")
    if java is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 (our own java, fixed arguments)
            [java, "-version"], check=False, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stderr.strip().splitlines()
    return lines[0] if lines else None


def bench_tenant(env: dict[str, str], tenant_id: str, name: str) -> str:
    """A fresh API key of the benchmark tenant (created on first use) in the stack's config."""
    directory = TenantDirectory(Path(env["LEADTRAIL_CONFIG_DIR"]))
    if directory.get(tenant_id) is None:
        _, key = directory.add(name, tenant_id=tenant_id, default_region="IT")
    else:
        _, key = directory.rotate_key(tenant_id, keep_old=True)
    return key


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


async def kafka_round_trip(bootstrap: str, samples: int = 200) -> dict[str, float]:
    """Latency of one message from an ``acks=all`` producer to a consumer on the same broker:
    the floor under every hop an event-driven flow makes."""
    topic = f"bench-rtt-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=5
    )
    await producer.start()
    await consumer.start()
    latencies: list[float] = []
    try:
        for n in range(samples + 1):
            started = time.perf_counter()
            await producer.send_and_wait(topic, str(n).encode())
            await consumer.getone()
            if n:  # the first one also pays for metadata and the group join
                latencies.append(time.perf_counter() - started)
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
    return summary(latencies, sum(latencies))


async def consumer_lag(env: dict[str, str]) -> int:
    """Events the services' consumer groups have not committed yet, over all groups."""
    bootstrap = env["LEADTRAIL_KAFKA_BOOTSTRAP"]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        lag = 0
        for group, _ in await admin.list_consumer_groups():
            committed = await admin.list_consumer_group_offsets(group)
            if not committed:
                continue
            ends = await consumer.end_offsets(list(committed))
            lag += sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items())
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def settle(env: dict[str, str], patience: float = 900.0) -> float:
    """Wait until no consumer group lags (the previous benchmark's work is done)."""
    started = time.monotonic()
    while (lag := await consumer_lag(env)) and time.monotonic() - started < patience:
        print(f"  waiting for the services to catch up: {lag} events behind", flush=True)
        await asyncio.sleep(5)
    return time.monotonic() - started
