from __future__ import annotations

from services.crm_sync.breaker import CircuitBreaker


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
