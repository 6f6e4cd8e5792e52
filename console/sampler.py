"""The System page's numbers, from the services' own ``/metrics``.

A background loop reads every service's metrics every ``interval_s`` (each read with a
deadline) and keeps the last hour of samples in memory: events published per second, whole
cluster, come from the difference between two samples; crm-sync's circuit states from the
last one. A service that does not answer is reported as such, not as zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services import declarations
from services.common.logging import get_logger

__all__ = ["MetricsSampler", "Sample", "parse_metrics", "service_urls_from_env"]

log = get_logger("console")
KEEP = 720
"""Samples kept: an hour at the default interval of 5 s."""


def service_urls_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Service name -> base URL, from ``LEADTRAIL_<SERVICE>_URL`` (as ``make up`` records
    them in ``.run/stack.env``); services without one are not sampled."""
    urls = {}
    for declaration in declarations():
        value = environ.get(f"LEADTRAIL_{declaration.name.upper().replace('-', '_')}_URL")
        if value:
            urls[declaration.name] = value.rstrip("/")
    return urls


@dataclass(frozen=True)
class Sample:
    at: float
    published: dict[str, float]
    """Service -> events it published so far (its counter)."""
    circuits: dict[str, str]
    """``tenant/connection`` -> circuit state, from crm-sync."""
    lag: dict[str, float] = field(default_factory=dict)
    """Consumer group -> records not consumed yet, over the partitions its processes hold."""
    unreachable: dict[str, str] = field(default_factory=dict)
    """Service -> why its metrics could not be read."""


@dataclass
class _Parsed:
    published: float = 0.0
    circuits: dict[str, str] = field(default_factory=dict)
    lag: dict[str, float] = field(default_factory=dict)


def parse_metrics(text: str) -> _Parsed:
    """The numbers the console uses from one service's Prometheus text."""
    parsed = _Parsed()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "leadtrail_events_published_total":
                parsed.published += sample.value
            elif sample.name == "leadtrail_crm_connection_circuit" and sample.value == 1:
                parsed.circuits[sample.labels["connection"]] = sample.labels["state"]
            elif sample.name == "leadtrail_consumer_lag":
                group = sample.labels["group"]
                parsed.lag[group] = parsed.lag.get(group, 0.0) + sample.value
    return parsed


class MetricsSampler:
    def __init__(self, urls: dict[str, str], interval_s: float, timeout_s: float) -> None:
        self.urls = urls
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.samples: deque[Sample] = deque(maxlen=KEEP)
        self._stop = asyncio.Event()

    async def sample(self, client: httpx.AsyncClient) -> Sample:
        published: dict[str, float] = {}
        circuits: dict[str, str] = {}
        lag: dict[str, float] = {}
        unreachable: dict[str, str] = {}

        async def read(name: str, url: str) -> None:
            try:
                response = await client.get(f"{url}/metrics", timeout=self.timeout_s)
                response.raise_for_status()
                parsed = parse_metrics(response.text)
            except (httpx.HTTPError, ValueError) as error:
                unreachable[name] = f"{type(error).__name__}: {str(error)[:200]}"
                return
            published[name] = parsed.published
            circuits.update(parsed.circuits)
            for group, records in parsed.lag.items():
                lag[group] = lag.get(group, 0.0) + records

        await asyncio.gather(*(read(name, url) for name, url in self.urls.items()))
        sample = Sample(time.time(), published, circuits, lag, unreachable)
        self.samples.append(sample)
        return sample

    async def run(self) -> None:
        """Sample until :meth:`stop`; a failed round is logged and the next one tried."""
        async with httpx.AsyncClient() as client:
            while not self._stop.is_set():
                try:
                    await self.sample(client)
                except Exception:
                    log.exception("metrics sample failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)

    def stop(self) -> None:
        self._stop.set()

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def events_per_second(self) -> list[tuple[str, float]]:
        """(clock time, events published per second by the cluster) between samples; a
        service missing from either sample of a pair is left out of that pair."""
        rates = []
        pairs = zip(list(self.samples), list(self.samples)[1:], strict=False)
        for before, after in pairs:
            elapsed = after.at - before.at
            if elapsed <= 0:
                continue
            shared = before.published.keys() & after.published.keys()
            delta = sum(max(after.published[n] - before.published[n], 0.0) for n in shared)
            rates.append((time.strftime("%H:%M:%S", time.gmtime(after.at)), delta / elapsed))
        return rates
