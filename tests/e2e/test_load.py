"""A sustained mixed workload for a bounded time, then exact reconciliation (R31, DESIGN 5).

Clients post leads, record interactions, unsubscribe people from marketing and request
erasures for ``LEADTRAIL_E2E_LOAD_SECONDS`` (default 45) seconds. A third of the way in, a
second replica of every service joins its consumer groups; two thirds in, they leave again:
every group rebalances twice under load, and records redelivered to the other replica while
the first still handles them must change nothing twice. Afterwards every consumer group
must come back to lag 0 (committed offsets = end offsets on every partition it reads), and the
counts must reconcile exactly: leads accepted = leads in lead-ingest's read model = leads in the
CRM for the people who consented to it and were not erased, with every erasure complete.

Throughput is printed (``pytest -s``), never asserted: speed is measured in ``bench/``.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.e2e.stack import E2EStack
from tests.e2e.workload import Workload

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # a busy 2-core machine is slow

CLIENTS = 6


async def test_a_sustained_mixed_workload_drains_to_zero_lag_and_reconciles_exactly(
    healthy: E2EStack,
) -> None:
    seconds = float(os.environ.get("LEADTRAIL_E2E_LOAD_SECONDS", "45"))
    workload = Workload(healthy)
    started = time.monotonic()
    stop_at = started + seconds

    async def client() -> None:
        while time.monotonic() < stop_at:
            await workload.live(workload.mixed(1)[0])

    async def rebalance() -> None:
        """Two replicas of every service for the middle third of the workload."""
        await asyncio.sleep(seconds / 3)
        async with healthy.second_replicas() as replicas:
            await asyncio.sleep(max(0.0, started + 2 * seconds / 3 - time.monotonic()))
            assert all(replica.running for replica in replicas)

    await asyncio.gather(rebalance(), *(client() for _ in range(CLIENTS)))
    busy = time.monotonic() - started
    await healthy.wait_for_zero_lag(within=300)
    drained = time.monotonic() - started
    counts = await workload.reconcile()
    assert counts["accepted"] == counts["in_read_model"]
    assert counts["erased"] > 0
    assert counts["in_crm"] > 0
    people = workload.acknowledged()
    print(
        f"\nload: {len(people)} leads in {busy:.1f}s ({len(people) / busy:.1f} leads/s, "
        f"{sum(p.qualify for p in people)} interactions, {sum(p.unsubscribe for p in people)} "
        f"unsubscribes, {counts['erased']} erasures) from {CLIENTS} clients; lag 0 after "
        f"{drained:.1f}s; counts {counts}; client retries {dict(workload.retries)}"
    )
