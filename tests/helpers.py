"""Small helpers shared by integration and end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""Prometheus samples: (sample name, labels) -> value."""


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 30.0, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something other than None; fail after ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while True:
                value = await probe()
                if value is not None:
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {within}s") from None


async def scrape_metrics(client: httpx.AsyncClient) -> Samples:
    """``GET /metrics``, parsed with prometheus_client's own text parser."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse_metrics(response.text)


def parse_metrics(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the sample with exactly these labels, or None if there is none."""
    return samples.get((name, frozenset(labels.items())))
