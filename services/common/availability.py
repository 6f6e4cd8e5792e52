"""Telling "a dependency did not answer" apart from "this record or request is wrong".

Every store and Kafka call has a deadline, so a store or broker that is down, slow or wedged
(frozen, deadlocked) surfaces as an exception rather than a hang. What happens next depends on
whose fault it is:

* **unavailable** (:func:`is_unavailable`): the store or Kafka did not answer in time or could
  not be reached. Nothing about the record is wrong, so a consumer must neither dead-letter it
  nor commit past it: it pauses on that record and retries until the dependency answers again,
  and ``/readyz`` says the consumer is stalled; an API request answers ``503`` with
  ``Retry-After``.
* anything else is a fault of the record or of the code: a consumer retries a few times, then
  dead-letters the record alone; an API request answers with its problem.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError
from pymongo.errors import ConnectionFailure, PyMongoError

__all__ = ["DependencyHealth", "is_unavailable"]


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the store or Kafka did not answer (in time), not that the work
    itself failed."""
    if isinstance(error, PyMongoError):
        # ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError;
        # `timeout` is true for every error caused by an operation's deadline (timeoutMS).
        return isinstance(error, ConnectionFailure) or error.timeout
    if isinstance(error, KafkaError):
        return bool(getattr(error, "retriable", False))
    return isinstance(error, TimeoutError | ConnectionError)


@dataclass
class DependencyHealth:
    """Which consumer groups are paused on a record because a dependency does not answer.

    Consumers report here; ``/readyz`` reads it, so a service whose consumers cannot make
    progress is not ready even when its own probe query happens to get through.
    """

    stalled: dict[str, tuple[str, float]] = field(default_factory=dict)
    """consumer group -> (why, monotonic time since when)"""

    def stall(self, group_id: str, reason: str) -> None:
        if group_id not in self.stalled:
            self.stalled[group_id] = (reason, time.monotonic())
        else:
            self.stalled[group_id] = (reason, self.stalled[group_id][1])

    def resume(self, group_id: str) -> None:
        self.stalled.pop(group_id, None)

    def report(self) -> dict[str, str]:
        """``{group: "stalled for Ns: why"}`` for every stalled group."""
        now = time.monotonic()
        return {
            group: f"stalled for {now - since:.0f}s: {reason}"
            for group, (reason, since) in sorted(self.stalled.items())
        }
