"""A per-connection circuit breaker: stop calling a CRM that keeps failing, probe it later.

closed --(``threshold`` consecutive failures)--> open --(``open_s`` later)--> half-open: one
call goes through; success closes the circuit, failure opens it again. Pending pushes simply
wait in the outbox meanwhile, so the backlog drains when the CRM is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["STATES", "CircuitBreaker"]

STATES = ("closed", "open", "half-open")


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


@dataclass
class CircuitBreaker:
    threshold: int
    open_s: float
    now: Callable[[], float] = time.monotonic
    _circuits: dict[str, _Circuit] = field(default_factory=dict)

    def allows(self, key: str) -> bool:
        circuit = self._circuits.setdefault(key, _Circuit())
        if circuit.opened_at is None:
            return True
        if self.now() - circuit.opened_at < self.open_s or circuit.probing:
            return False
        circuit.probing = True  # half-open: let exactly one call through
        return True

    def succeeded(self, key: str) -> None:
        self._circuits[key] = _Circuit()

    def failed(self, key: str) -> None:
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        circuit.probing = False
        if circuit.opened_at is not None or circuit.failures >= self.threshold:
            circuit.opened_at = self.now()

    def states(self) -> dict[str, str]:
        """The state of every circuit seen so far."""
        return {key: self.state(key) for key in self._circuits}

    def state(self, key: str) -> str:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return "closed"
        return "half-open" if circuit.probing else "open"
