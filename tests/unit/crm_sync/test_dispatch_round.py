"""A dispatch round reads its outbox entries once, and again only when they grow old.

Each due entry used to be read again right before its CRM call: one store round trip per entry,
though the round had read it milliseconds before. Now the round's copies serve while they are at
most ``FRESH_FOR_S`` old; after that the rest of the round is read again in one read, so an
operation a handler queued meanwhile (an erasure's delete) is still seen before the call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.crm_sync import dispatcher as dispatching
from services.crm_sync.dispatcher import FRESH_FOR_S, Dispatcher

DUE = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def entry(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "_id": f"e{n}",
        "tenant_id": "acme",
        "lead_id": f"lead{n}",
        "subject_id": f"s{n}",
        "state": "pending",
        "next_attempt_at": DUE,
        "operation": "upsert",
        **changes,
    }


class Outbox:
    """The store as the round sees it: what is stored now, and each read of it."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.stored = {e["_id"]: dict(e) for e in entries}
        self.reads: list[list[str]] = []

    async def outbox_entries(self, ids: Any) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(ids))
        self.reads.append(wanted)
        return {i: dict(self.stored[i]) for i in wanted if i in self.stored}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def round_of(
    outbox: Outbox, clock: Clock, *, call_takes_s: float, changed_by_call: dict[str, Any]
) -> tuple[Dispatcher, list[str]]:
    """A dispatcher whose CRM calls take ``call_takes_s`` each; the call for an entry id in
    ``changed_by_call`` queues that change meanwhile, as a handler would."""
    called: list[str] = []
    dispatcher = Dispatcher.__new__(Dispatcher)  # no CRM, no runtime: only the round's logic
    dispatcher.store = outbox  # type: ignore[assignment]
    dispatcher._read = {}

    async def prefetch(entries: list[Any]) -> None:
        return None

    async def process(fresh: dict[str, Any]) -> int:
        called.append(fresh["_id"])
        clock.now += call_takes_s
        for entry_id, change in changed_by_call.items():
            if fresh["_id"] == entry_id:
                outbox.stored[change["_id"]].update(change)
        return 1

    dispatcher.prefetch = prefetch  # type: ignore[method-assign]
    dispatcher.process = process  # type: ignore[method-assign,assignment]
    return dispatcher, called


async def test_a_quick_round_reads_no_entry_again(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(dispatching, "monotonic", clock)
    entries = [entry(n) for n in range(5)]
    outbox = Outbox(entries)
    dispatcher, called = round_of(outbox, clock, call_takes_s=0.01, changed_by_call={})
    assert await dispatcher.run_entries(entries) == 5
    assert called == ["e0", "e1", "e2", "e3", "e4"]
    assert outbox.reads == []


async def test_a_slow_round_reads_the_rest_again_and_skips_what_a_handler_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(dispatching, "monotonic", clock)
    entries = [entry(n) for n in range(4)]
    outbox = Outbox(entries)
    # While e0's call runs, an erasure queues a delete on e2 (a new due time); e3 is gone.
    delete = {"_id": "e2", "operation": "delete", "next_attempt_at": DUE.replace(hour=10)}
    dispatcher, called = round_of(
        outbox, clock, call_takes_s=FRESH_FOR_S * 0.75, changed_by_call={"e0": delete}
    )
    del outbox.stored["e3"]
    assert await dispatcher.run_entries(entries) == 2
    # e0 and e1 within the copies' age; before e2, one read of the rest: e2 changed, e3 gone.
    assert called == ["e0", "e1"]
    assert outbox.reads == [["e2", "e3"]]
