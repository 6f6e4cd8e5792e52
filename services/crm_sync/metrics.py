"""crm-sync in numbers: CRM calls by adapter and outcome, and the circuit breakers' states.

* ``leadtrail_crm_pushes_total{adapter, operation, outcome}``: one per outbox entry carried
  out; ``operation`` is ``upsert`` or ``delete``; ``outcome`` is ``ok``, ``skipped`` (not
  allowed now, or the data was erased), ``retry`` (transient failure, rescheduled) or
  ``dead_letter`` (permanent failure or out of attempts).
* ``leadtrail_crm_circuits{adapter, state}``: how many CRM connections have their circuit
  ``closed``, ``open`` or ``half-open``, read from the breaker on each scrape.
* ``leadtrail_crm_connection_circuit{connection, state}``: 1 for the state each connection
  (``tenant/connection``, bounded by the tenants' configuration) is in, 0 for the others; the
  console's CRM page reads it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.common.metrics import LabelCache, ServiceMetrics
from services.crm_sync.breaker import STATES, CircuitBreaker

__all__ = ["CrmMetrics"]


class CrmMetrics:
    def __init__(self, metrics: ServiceMetrics, breaker: CircuitBreaker) -> None:
        self.service = metrics.service
        self.breaker = breaker
        self.kinds: dict[str, str] = {}
        """breaker key -> adapter kind (the breaker itself knows only keys)"""
        self.pushes = Counter(
            "leadtrail_crm_pushes",
            "CRM calls carried out from the outbox, by adapter, operation and outcome",
            ["service", "adapter", "operation", "outcome"],
            registry=metrics.registry,
        )
        self.circuits = Gauge(
            "leadtrail_crm_circuits",
            "CRM connections per circuit-breaker state",
            ["service", "adapter", "state"],
            registry=metrics.registry,
        )
        self.connection_circuits = Gauge(
            "leadtrail_crm_connection_circuit",
            "1 for the circuit-breaker state each CRM connection (tenant/connection) is in",
            ["service", "connection", "state"],
            registry=metrics.registry,
        )
        self._pushes = LabelCache(self.pushes)
        metrics.on_scrape("crm_circuits", self.refresh)

    def pushed(self, adapter: str, operation: str, outcome: str) -> None:
        self._pushes(self.service, adapter, operation, outcome).inc()

    async def refresh(self) -> None:
        counts = {(kind, state): 0 for kind in set(self.kinds.values()) for state in STATES}
        for key, state in self.breaker.states().items():
            kind = self.kinds.get(key)
            if kind is not None:
                counts[kind, state] += 1
            for known in STATES:
                self.connection_circuits.labels(self.service, key, known).set(
                    1 if known == state else 0
                )
        for (kind, state), count in counts.items():
            self.circuits.labels(self.service, kind, state).set(count)
