from __future__ import annotations

from services.common.metrics import ServiceMetrics
from services.crm_sync.breaker import CircuitBreaker
from services.crm_sync.metrics import CrmMetrics


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_opens_after_the_threshold_and_probes_once_after_the_pause() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, open_s=10, now=clock)
    for _ in range(2):
        breaker.failed("crm")
        assert breaker.allows("crm")
    breaker.failed("crm")
    assert breaker.state("crm") == "open"
    assert not breaker.allows("crm")
    clock.t = 10
    assert breaker.allows("crm"), "half-open: one probe"
    assert not breaker.allows("crm"), "only one"
    breaker.failed("crm")
    assert breaker.state("crm") == "open"
    clock.t = 20
    assert breaker.allows("crm")
    breaker.succeeded("crm")
    assert breaker.state("crm") == "closed"
    assert breaker.allows("crm")


def test_circuits_are_per_connection() -> None:
    breaker = CircuitBreaker(threshold=1, open_s=10, now=Clock())
    breaker.failed("a")
    assert not breaker.allows("a")
    assert breaker.allows("b")


async def test_circuit_states_are_counted_per_adapter_kind_on_scrape() -> None:
    metrics = ServiceMetrics("crm-sync", topic_prefix="unit.", event_types=())
    breaker = CircuitBreaker(threshold=1, open_s=10, now=Clock())
    crm = CrmMetrics(metrics, breaker)
    crm.kinds.update({"acme/hs": "hubspot", "globex/hs": "hubspot", "acme/sf": "salesforce"})
    for key in crm.kinds:
        breaker.allows(key)
    breaker.failed("acme/hs")
    crm.pushed("hubspot", "upsert", "retry")
    crm.pushed("salesforce", "upsert", "ok")
    crm.pushed("salesforce", "upsert", "ok")
    await metrics.refresh()

    def get(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"service": "crm-sync", **labels})

    assert get("leadtrail_crm_circuits", adapter="hubspot", state="open") == 1
    assert get("leadtrail_crm_circuits", adapter="hubspot", state="closed") == 1
    assert get("leadtrail_crm_circuits", adapter="salesforce", state="closed") == 1
    assert get("leadtrail_crm_circuits", adapter="salesforce", state="open") == 0
    pushes = "leadtrail_crm_pushes_total"
    assert get(pushes, adapter="salesforce", operation="upsert", outcome="ok") == 2
    assert get(pushes, adapter="hubspot", operation="upsert", outcome="retry") == 1

    breaker.succeeded("acme/hs")
    await metrics.refresh()
    assert get("leadtrail_crm_circuits", adapter="hubspot", state="open") == 0
    assert get("leadtrail_crm_circuits", adapter="hubspot", state="closed") == 2
