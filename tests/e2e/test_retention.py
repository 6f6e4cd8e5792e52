"""Retention expiry and a legal hold across the separate processes, with time moved two years
forward through the test-only clock offset file every process reads (R15, R17, R18, R25).

This test starts its own cluster: moving time in the shared one would expire everyone there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from tests.e2e.stack import E2EStack, e2e_stack
from tests.e2e.workload import ALL_RECEIPTS, Workload
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]  # a busy 2-core machine is slow


@pytest.fixture
async def timed(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[E2EStack]:
    workdir = tmp_path_factory.mktemp("e2e-clock")
    async with e2e_stack(kafka_bootstrap, mongo_url, workdir, test_clock=True) as stack:
        yield stack


async def test_two_years_on_leads_expire_and_are_erased_unless_a_legal_hold_defers_it(
    timed: E2EStack,
) -> None:
    workload = Workload(timed)
    expiring, held = workload.person(), workload.person()
    await workload.run_people([expiring, held], concurrency=2)
    for person in (expiring, held):
        await workload.lead(person, until=lambda v: v["state"] == "qualified")
        await timed.document("retention_due", f"acme:{person.subject_id}:lead_data")
    await _crm_holds(workload, {expiring.email, held.email})
    hold_id = await timed.hold(str(held.subject_id), "Litigation 2026/118")

    await timed.jump_clock(timedelta(days=731))
    # Every process says it runs the test clock, with the offset now in force.
    for name in timed.processes:
        ready = await timed.cluster.client(name).get("/readyz")
        assert ready.json()["test_clock"]["offset_s"] == timedelta(days=731).total_seconds()

    done = await timed.cluster.wait_for_event(
        "erasure-events",
        lambda e: e.type == "erasure.completed" and e.subject_id == expiring.subject_id,
        within=90,
    )
    assert done.data["trigger"]["kind"] == "retention"
    assert {receipt["service"] for receipt in done.data["receipts"]} == ALL_RECEIPTS
    erased = await workload.lead(expiring, until=lambda v: v["state"] == "erased")
    assert erased["contact"] is None
    await _crm_holds(workload, {held.email})  # the expired lead left the CRM
    expired = {
        e.subject_id
        for e in await timed.events("retention-events")
        if e.type == "retention.expired"
    }
    assert expired == {expiring.subject_id}, "nothing under a legal hold expires"

    request = await workload.erase(held)
    deferred = await timed.cluster.wait_for_event(
        "erasure-events", lambda e: e.type == "erasure.deferred" and e.subject_id == held.subject_id
    )
    assert deferred.data["hold_ids"] == [hold_id]
    still = await workload.lead(held)
    assert still["contact"]["email"] == held.email, "held data stays readable"

    await timed.release(str(held.subject_id), hold_id)
    released = await timed.cluster.wait_for_event(
        "erasure-events",
        lambda e: (
            e.type == "erasure.completed"
            and e.subject_id == held.subject_id
            and e.data["trigger"]["kind"] == "privacy_request"
        ),
        within=90,
    )
    assert released.data["erasure_id"] == deferred.data["erasure_id"]
    assert request["request_id"]
    await workload.lead(held, until=lambda v: v["state"] == "erased")
    await _crm_holds(workload, set())


async def _crm_holds(workload: Workload, emails: set[str]) -> None:
    async def exactly() -> bool | None:
        return True if set(workload.in_crm()) == emails else None

    await eventually(exactly, within=90, what=f"the CRM to hold exactly {sorted(emails)}")
