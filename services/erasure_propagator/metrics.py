"""The erasure SLA in numbers (R25): how long erasures take, how many are open, how many are
past their deadline.

* ``leadtrail_erasure_completion_seconds{trigger}``: from the moment an erasure became due (the
  privacy request was received, retention expired, the last legal basis ended) to
  ``erasure.completed``; observed once per erasure, when it completes.
* ``leadtrail_erasures_open{state}`` and ``leadtrail_erasures_past_deadline{state}``: counted
  in the read model on each scrape. ``state`` is ``requested`` (keys
  destroyed, waiting for receipts) or ``deferred`` (paused by a legal hold, which R25 allows).
"""

from __future__ import annotations

from datetime import datetime

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
        metrics.on_scrape("erasures", self.refresh)

    def completed(self, document: Document, at: datetime) -> None:
        """Observe one completed erasure (call once, when it completes)."""
        opened: datetime = document.get("opened_at") or document.get("requested_at") or at
        kind = (document.get("trigger") or {}).get("kind")
        trigger = kind if kind in TRIGGERS else OTHER
        self.completion.labels(self.service, trigger).observe(
            max(0.0, (at - opened).total_seconds())
        )

    async def refresh(self) -> None:
        counts = await self.store.open_counts(self.clock.now())
        for state in OPEN_STATES:
            total, late = counts.get(state, (0, 0))
            self.open.labels(self.service, state).set(total)
            self.past_deadline.labels(self.service, state).set(late)
