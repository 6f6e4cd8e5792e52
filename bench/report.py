"""``make bench``: every benchmark on one fresh stack, and the report in bench/README.md.

    make bench                      # the full run (about 5 minutes on 2 cores; target 20)
    .venv/bin/python -m bench.report --quick

Starts a stack of its own under ``.run/bench`` (fresh Kafka and store data, so no backlog of
earlier runs skews it), runs the benchmarks one after the other, waiting between them until
every consumer group has caught up, stops the stack, and writes bench/README.md: each figure
beside the baseline measured in the same run on the same broker, the targets, and the machine.
Raw results go to bench/results/*.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import crm_sync, e2e_latency, erasure, ingest, replay, roundtrips
from bench._common import ROOT, save, settle, stack_env
from bench.render import render
from bench.size import kept_section, splice
from devstack.stack import stack_down, stack_up
from services.common.logging import configure_logging

console = Console()
RUN_ROOT = ROOT / ".run" / "bench"
REPORT = ROOT / "bench" / "README.md"


@dataclass(frozen=True)
class Sizes:
    ingest_seconds: float
    e2e_target_seconds: float
    e2e_steady_rate: float
    e2e_steady_seconds: float
    crm_leads: int
    erasure_subjects: int
    replay_events: int
    round_trip_leads: int
    round_trip_erasures: int


FULL = Sizes(20, 2, 10, 20, 200, 50, 100_000, 240, 60)
QUICK = Sizes(5, 1, 5, 5, 30, 10, 2_000, 40, 10)


async def run_all(env: dict[str, str], sizes: Sizes) -> dict[str, Any]:
    steps: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("ingest", lambda: ingest.run(env, clients=32, seconds=sizes.ingest_seconds)),
        (
            "e2e_target",
            lambda: e2e_latency.run(env, rate=500, seconds=sizes.e2e_target_seconds, patience=900),
        ),
        (
            "e2e_steady",
            lambda: e2e_latency.run(
                env, rate=sizes.e2e_steady_rate, seconds=sizes.e2e_steady_seconds, patience=900
            ),
        ),
        ("crm_sync", lambda: crm_sync.run(env, leads=sizes.crm_leads, clients=16, patience=900)),
        (
            "erasure",
            lambda: erasure.run(env, subjects=sizes.erasure_subjects, rate=5, patience=900),
        ),
        (
            "roundtrips",
            lambda: roundtrips.run(
                env,
                leads=sizes.round_trip_leads,
                erasures=sizes.round_trip_erasures,
                idle_seconds=20,
                patience=900,
                clients=32,
            ),
        ),
        ("replay", lambda: replay.run(env, events=sizes.replay_events)),
    ]
    results: dict[str, Any] = {}
    for name, step in steps:
        await settle(env)
        console.rule(name)
        results[name] = await step()
        console.print(f"saved {save(name, results[name])}")
    return results


BENCH_SETTINGS = {
    # The e2e benchmark's one tenant offers 500 leads/s (two requests each, and a retry while
    # the lead reaches the read model): over the default per-tenant limit of 200 requests/s,
    # which would answer most of them 429. The benchmark measures the pipeline, not the limiter.
    "LEADTRAIL_RATE_LIMIT_PER_S": "2000",
    "LEADTRAIL_RATE_LIMIT_BURST": "4000",
}


def fresh_stack() -> dict[str, str]:
    for name, value in BENCH_SETTINGS.items():
        os.environ.setdefault(name, value)  # stack_up passes LEADTRAIL_* on to the services
    stack_down(RUN_ROOT)
    for part in ("kafka", "mongo", "config", "logs"):
        shutil.rmtree(RUN_ROOT / part, ignore_errors=True)
    stack_up(RUN_ROOT)
    return stack_env(RUN_ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the harness")
    parser.add_argument(
        "--output", type=Path, default=REPORT, help="where to write the report (Markdown)"
    )
    args = parser.parse_args()
    configure_logging("bench", level="warning", fmt="console")
    console.print(f"starting a fresh stack under {RUN_ROOT} ...")
    began = time.monotonic()
    env = fresh_stack()
    try:
        results = asyncio.run(run_all(env, QUICK if args.quick else FULL))
    finally:
        stack_down(RUN_ROOT)
    report = render(results, quick=args.quick, elapsed_s=time.monotonic() - began)
    # The size run (python -m bench.size) is separate and slow: keep its section.
    previous = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    if section := kept_section(previous):
        report = splice(report, section)
    args.output.write_text(report, encoding="utf-8")
    console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
