"""Size independence: the ingest and erasure benchmarks on an empty store, then on one that
already holds ``--leads`` leads (100,000 by default), on one fresh stack of its own.

    .venv/bin/python -m bench.size                     # ~10 minutes on 2 cores
    .venv/bin/python -m bench.size --leads 20000 --quick

How the store is filled: after the empty-store run, every document the services wrote for its
leads (each service's read models, keys, outboxes, schedules...) is copied with new ``_id``s
until lead-ingest's ``leads`` collection holds ``--leads`` documents, every other collection
growing in the same proportion. So each collection is as large as it would be after that many
real leads, with documents of the real shapes and sizes, in a fraction of the time the API
would take to create them. The second run then measures what a large store costs: anything
that scans a collection instead of going by ``_id`` shows as a lower rate. Target: at least 80%
of the empty-store rate. Writes ``bench/results/size.json`` and the section "Size
independence" of ``bench/README.md`` (``--render`` writes the section again from the saved
results without running anything; ``make bench`` keeps the section when it rewrites the rest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from rich.console import Console
from rich.progress import Progress

from bench import erasure, ingest
from bench._common import RESULTS, ROOT, machine, save, settle, stack_env
from devstack.stack import stack_down, stack_up
from services.common.logging import configure_logging

console = Console()
RUN_ROOT = ROOT / ".run" / "bench-size"
REPORT = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- bench.size: begin -->", "<!-- bench.size: end -->"
CHUNK = 2_000
TARGET = 0.80

Document = dict[str, Any]


async def fill(env: dict[str, str], leads: int) -> dict[str, int]:
    """Copy the store's documents until ``leads`` holds ``leads`` documents; the counts after."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(env["LEADTRAIL_MONGO_URL"])
    try:
        db = client[env["LEADTRAIL_MONGO_DB"]]
        names = sorted(await db.list_collection_names())
        seeds = {name: await db[name].find({}).to_list(None) for name in names}
        per_copy = max(1, len(seeds.get("leads", [])))
        copies = max(0, leads - per_copy) // per_copy
        total = copies * sum(len(documents) for documents in seeds.values())
        with Progress(console=console) as bar:
            task = bar.add_task(f"copying {copies} times", total=total)
            for name, documents in seeds.items():
                batch: list[Document] = []
                for copy in range(1, copies + 1):
                    for document in documents:
                        batch.append({**document, "_id": f"{document['_id']}~{copy}"})
                        if len(batch) >= CHUNK:
                            await db[name].insert_many(batch, ordered=False)
                            bar.advance(task, len(batch))
                            batch = []
                if batch:
                    await db[name].insert_many(batch, ordered=False)
                    bar.advance(task, len(batch))
        return {name: await db[name].estimated_document_count() for name in names}
    finally:
        await client.close()


async def measure(env: dict[str, str], seconds: float, subjects: int) -> dict[str, Any]:
    # Each benchmark starts on services that have caught up (as in `make bench`): the ingest
    # run leaves a backlog, and an erasure queued behind it would time the backlog instead.
    await settle(env)
    measured_ingest = await ingest.run(env, clients=32, seconds=seconds)
    await settle(env)
    result = {
        "ingest": measured_ingest,
        "erasure": await erasure.run(env, subjects=subjects, rate=5, patience=900),
    }
    ingest.show(result["ingest"])
    erasure.show(result["erasure"])
    return result


async def run(env: dict[str, str], *, leads: int, seconds: float, subjects: int) -> dict[str, Any]:
    console.rule("empty store")
    empty = await measure(env, seconds, subjects)
    console.rule(f"filling the store to {leads} leads")
    began = time.monotonic()
    counts = await fill(env, leads)
    filled_in = time.monotonic() - began
    console.print(f"filled in {filled_in:.0f}s: {counts}")
    console.rule(f"store holding {counts.get('leads', 0)} leads")
    full = await measure(env, seconds, subjects)
    ingest_ratio = full["ingest"]["api"]["per_second"] / empty["ingest"]["api"]["per_second"]
    # Erasures run at a fixed offered rate, so the figure is speed: empty p50 / full p50.
    erasure_ratio = float(empty["erasure"]["p50_ms"]) / float(full["erasure"]["p50_ms"])
    console.print(
        f"ingest rate, full/empty: [bold]{ingest_ratio:.2f}[/bold]; "
        f"erasure speed (p50 empty/full): [bold]{erasure_ratio:.2f}[/bold] (target 0.80)"
    )
    return {
        "machine": machine(),
        "leads": leads,
        "collections": counts,
        "filled_in_s": filled_in,
        "empty": empty,
        "full": full,
        "ingest_ratio": ingest_ratio,
        "erasure_ratio": erasure_ratio,
    }


def _verdict(ratio: float) -> str:
    return "**met**" if ratio >= TARGET else "**not met**"


def render(result: dict[str, Any]) -> str:
    """The "Size independence" section of bench/README.md from one run's results."""
    empty, full = result["empty"], result["full"]
    rows = [
        (
            "ingest, POST /v1/leads per second (32 clients)",
            f"{empty['ingest']['api']['per_second']:,.1f}",
            f"{full['ingest']['api']['per_second']:,.1f}",
            f"{result['ingest_ratio']:.2f} (full / empty)",
            _verdict(result["ingest_ratio"]),
        ),
        (
            f"erasure p50, request -> erasure.completed ({empty['erasure']['subjects']} subjects)",
            f"{empty['erasure']['p50_ms']:,.0f} ms",
            f"{full['erasure']['p50_ms']:,.0f} ms",
            f"{result['erasure_ratio']:.2f} (empty / full)",
            _verdict(result["erasure_ratio"]),
        ),
        (
            "erasure p99",
            f"{empty['erasure']['p99_ms']:,.0f} ms",
            f"{full['erasure']['p99_ms']:,.0f} ms",
            "",
            "",
        ),
        (
            "bare aiokafka producer per second (same broker)",
            f"{empty['ingest']['bare_producer']['per_second']:,.0f}",
            f"{full['ingest']['bare_producer']['per_second']:,.0f}",
            "",
            "",
        ),
    ]
    lines = [
        BEGIN,
        "## Size independence",
        "",
        "Produced by `python -m bench.size` (see its docstring): the ingest and erasure benchmarks",
        "on one fresh local stack, first with an empty store, then after the store was filled to",
        f"{result['leads']:,} leads by copying the documents the first run wrote (each collection",
        "in proportion). A figure that depends on how much is already stored shows as a ratio",
        f"below 1. Target: at least {TARGET:.0%} of the empty-store figure. Ratios from one run;",
        "absolute numbers depend on the machine and its load at the time. The full-store run",
        "comes second, on warmed-up JVMs and services: the bare producer's row shows how far the",
        "machine's own pace moved between the two. Each benchmark starts once every consumer",
        "group has caught up.",
        "",
        "| figure | empty store | full store | ratio | target |",
        "|---|---:|---:|---:|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
        "",
        f"Filled in {result['filled_in_s']:,.0f} s. Documents per collection in the full store:",
        "",
        "| collection | documents |",
        "|---|---:|",
        *(f"| {name} | {count:,} |" for name, count in sorted(result["collections"].items())),
        "",
        "Measured on: "
        + ", ".join(f"{key} {value}" for key, value in result["machine"].items() if value),
        END,
    ]
    return "\n".join(lines)


def splice(report: str, section: str) -> str:
    """``report`` with its size section replaced by ``section`` (appended if it has none)."""
    if BEGIN in report and END in report:
        before, _, rest = report.partition(BEGIN)
        _, _, after = rest.partition(END)
        return before + section + after
    return report.rstrip("\n") + "\n\n" + section + "\n"


def kept_section(report: str) -> str | None:
    """The size section of an existing report, for ``make bench`` to carry over."""
    if BEGIN not in report or END not in report:
        return None
    return BEGIN + report.partition(BEGIN)[2].partition(END)[0] + END


def write_report(result: dict[str, Any], path: Path = REPORT) -> Path:
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark report\n"
    path.write_text(splice(existing, render(result)), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=100_000, help="leads in the full store")
    parser.add_argument("--quick", action="store_true", help="short phases, to try the harness")
    parser.add_argument(
        "--render", action="store_true", help="only write the report from the saved results"
    )
    args = parser.parse_args()
    if args.render:
        saved = RESULTS / "size.json"
        if not saved.exists():
            parser.exit(1, f"error: no saved results at {saved}; run python -m bench.size first\n")
        console.print(f"wrote {write_report(json.loads(saved.read_text(encoding='utf-8')))}")
        return
    configure_logging("bench", level="warning", fmt="console")
    stack_down(RUN_ROOT)
    for part in ("kafka", "mongo", "config", "logs"):
        shutil.rmtree(RUN_ROOT / part, ignore_errors=True)
    console.print(f"starting a fresh stack under {RUN_ROOT} ...")
    stack_up(RUN_ROOT)
    env = stack_env(RUN_ROOT)
    seconds, subjects = (5.0, 10) if args.quick else (20.0, 50)
    try:
        result = asyncio.run(run(env, leads=args.leads, seconds=seconds, subjects=subjects))
    finally:
        stack_down(RUN_ROOT)
    console.print(f"saved {save('size', result)}; wrote {write_report(result)}")


if __name__ == "__main__":
    main()
