"""The erasure SLA in numbers (R25): how long erasures take, how many are open, how many are
past their deadline.

* ``leadtrail_erasure_completion_seconds{trigger}``: from the moment an erasure became due (the
  privacy request was received, retention expired, the last legal basis ended) to
  ``erasure.completed``; observed once per erasure, when it completes.
* ``leadtrail_erasures_open{state}`` and ``leadtrail_erasures_past_deadline{state}``: counted
  in the read model when scraped (one read), again only after this process handled a batch of
  erasure events or once the count is :data:`GAUGES_MAX_AGE` old by the service's clock (for
  what other replicas handled, and deadlines passing): an idle service scraped every few
  seconds (the console samples every 5 s) does not read the store on every scrape. ``state``
  is ``requested`` (keys destroyed, waiting for receipts) or ``deferred`` (paused by a legal
  hold, which R25 allows).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import Gauge, Histogram

from services.common.clock import Clock
from services.common.metrics import OTHER, ServiceMetrics
from services.common.store import Document
from services.erasure_propagator.domain import OPEN_STATES
from services.erasure_propagator.store import ErasureStore

__all__ = ["ErasureMetrics"]

DAY = 86_400.0
BUCKETS = (
    1.0,
    10.0,
    60.0,
    600.0,
    3600.0,
    6 * 3600.0,
    DAY,
    3 * DAY,
    7 * DAY,
    14 * DAY,  # two working weeks are at least 14 calendar days
    21 * DAY,
    30 * DAY,
)
TRIGGERS = frozenset({"privacy_request", "retention", "no_basis_remaining"})
GAUGES_MAX_AGE = timedelta(seconds=30)
COUNT_ATTEMPTS = 3
"""Counts a scrape makes when batches keep overtaking them (it shows the last one)."""


class ErasureMetrics:
    def __init__(self, metrics: ServiceMetrics, store: ErasureStore, clock: Clock) -> None:
        self.service = metrics.service
        self.store = store
        self.clock = clock
        self.completion = Histogram(
            "leadtrail_erasure_completion_seconds",
            "Seconds from the moment an erasure became due to erasure.completed (R25)",
            ["service", "trigger"],
            buckets=BUCKETS,
            registry=metrics.registry,
        )
        self.open = Gauge(
            "leadtrail_erasures_open",
            "Erasures not completed yet, by state (requested, deferred by a legal hold)",
            ["service", "state"],
            registry=metrics.registry,
        )
        self.past_deadline = Gauge(
            "leadtrail_erasures_past_deadline",
            "Erasures not completed whose deadline (two working weeks, R25) has passed",
            ["service", "state"],
            registry=metrics.registry,
        )
        self._counted_at: datetime | None = None
        """When the open gauges were last counted (None: count on the next scrape)."""
        self._changes = 0
        """How often :meth:`invalidate` was called."""
        metrics.on_scrape("erasures", self.refresh)

    def completed(self, document: Document, at: datetime) -> None:
        """Observe one completed erasure (call once, when it completes)."""
        opened: datetime = document.get("opened_at") or document.get("requested_at") or at
        kind = (document.get("trigger") or {}).get("kind")
        trigger = kind if kind in TRIGGERS else OTHER
        self.completion.labels(self.service, trigger).observe(
            max(0.0, (at - opened).total_seconds())
        )

    def invalidate(self) -> None:
        """Erasure states may have changed: the next scrape counts again."""
        self._changes += 1
        self._counted_at = None

    async def refresh(self) -> None:
        now = self.clock.now()
        if self._counted_at is not None and timedelta(0) <= now - self._counted_at < GAUGES_MAX_AGE:
            return
        for _ in range(COUNT_ATTEMPTS):
            changes = self._changes
            counts = await self.store.open_counts(now)
            if changes == self._changes:  # no batch overtook the count: keep it
                self._counted_at = now
                break
        for state in OPEN_STATES:
            total, late = counts.get(state, (0, 0))
            self.open.labels(self.service, state).set(total)
            self.past_deadline.labels(self.service, state).set(late)
