"""Benchmark: what metrics and correlation ids cost per event and per HTTP request.

    .venv/bin/python -m bench.observability --rounds 7

Needs no stack. Each figure is measured beside its baseline in the same run, in interleaved
rounds (the median is reported), so load from elsewhere on the machine hits both alike:

* per handled event: counting it (``ServiceMetrics.handled``, counter and histogram through
  the cached label children) and its ``event handled`` JSON log line (written to /dev/null),
  against an empty call;
* per HTTP request: a bare ASGI app called directly, with and without
  :class:`RequestObservability` around it (correlation id minted and bound, response header,
  counter, histogram, the debug-level ``request served`` line of a GET). The whole FastAPI and
  uvicorn stack around a real request costs far more than either.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench._common import machine, save
from contracts import REGISTRY
from services.common.logging import configure_logging, get_logger, message_context
from services.common.metrics import ServiceMetrics
from services.common.observability import RequestObservability

console = Console()


def per_call_us(work: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - started) / calls * 1e6


def event_figures(rounds: int, calls: int) -> dict[str, float]:
    metrics = ServiceMetrics(
        "bench", topic_prefix="bench.", event_types=[d.type for d in REGISTRY.definitions()]
    )
    log = get_logger("bench")
    samples: dict[str, list[float]] = {"empty": [], "count": [], "log_line": []}
    with message_context(
        service="bench", tenant_id="acme", correlation_id="c" * 36, event_id="e" * 36
    ):
        for _ in range(rounds):
            samples["empty"].append(per_call_us(lambda: None, calls))
            samples["count"].append(
                per_call_us(
                    lambda: metrics.handled("lead-events", "lead.captured", "ok", 0.001), calls
                )
            )
            samples["log_line"].append(
                per_call_us(
                    lambda: log.info("event handled", topic="lead-events", duration_ms=1.0), calls
                )
            )
    return {f"{name}_us": statistics.median(values) for name, values in samples.items()}


class _Route:
    path = "/v1/things/{thing_id}"


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The least an ASGI app does: route, answer 200 with a small body."""
    scope["route"] = _Route
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


async def asgi_us(application: ASGIApp, calls: int) -> float:
    started = time.perf_counter()
    for n in range(calls):
        scope: Scope = {
            "type": "http",
            "method": "GET",
            "path": f"/v1/things/{n}",
            "headers": [(b"host", b"bench")],
        }
        await application(scope, _receive, _send)
    return (time.perf_counter() - started) / calls * 1e6


async def http_figures(rounds: int, calls: int) -> dict[str, float]:
    metrics = ServiceMetrics("bench", topic_prefix="bench.", event_types=())
    observed = RequestObservability(bare_app, metrics)
    results: dict[str, list[float]] = {"bare_us": [], "observed_us": []}
    for _ in range(rounds):
        results["bare_us"].append(await asgi_us(bare_app, calls))
        results["observed_us"].append(await asgi_us(observed, calls))
    figures = {name: statistics.median(values) for name, values in results.items()}
    figures["overhead_us"] = figures["observed_us"] - figures["bare_us"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per event round")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per HTTP round")
    args = parser.parse_args()
    with open(os.devnull, "w") as sink:  # noqa: PTH123 (a plain file object for the logger)
        real_stderr, sys.stderr = sys.stderr, sink
        try:
            configure_logging("bench", "info", "json")
            events = event_figures(args.rounds, args.calls)
            http = asyncio.run(http_figures(args.rounds, args.requests))
        finally:
            sys.stderr = real_stderr
    table = Table(title="observability cost (median of interleaved rounds)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("empty call (baseline)", f"{events['empty_us']:.2f} µs")
    table.add_row("count a handled event", f"{events['count_us']:.2f} µs")
    table.add_row("'event handled' log line", f"{events['log_line_us']:.2f} µs")
    table.add_row("bare ASGI request (baseline)", f"{http['bare_us']:.2f} µs")
    table.add_row("same, with RequestObservability", f"{http['observed_us']:.2f} µs")
    table.add_row("middleware cost per request", f"{http['overhead_us']:.2f} µs")
    console.print(table)
    path = save("observability", {"machine": machine(), "events": events, "http": http})
    console.print(f"saved {path}")


if __name__ == "__main__":
    main()
