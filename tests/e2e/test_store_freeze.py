"""A wedged document store, mid-workload, on the five service processes (DESIGN: every wait has
a deadline).

The store process is frozen with SIGSTOP: its port still accepts connections and nothing
answers, the way a deadlocked or swapping server behaves (a FerretDB ``bulk_write`` once wedged
a whole stack like this, silently, for 36 minutes). While it is frozen:

* every API route of every service answers within its deadline: ``503 store-unavailable`` with
  ``Retry-After`` where it needs the store, never a hung request;
* every service's ``/readyz`` is ``503 not ready`` and names the store; ``/healthz`` stays 200;
* consumers stop on the first record they cannot handle, commit nothing past it, and say so in
  ``/readyz``;
* operator CLI commands that read the store print one ``error:`` line and exit non-zero.

Then it is thawed (SIGCONT) and the cluster heals by itself: the clients' retries with the same
``Idempotency-Key`` succeed, the stalled consumers resume, and the reconciliation finds every
lead that got a 202 in every read model and in the CRM exactly once.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import SERVICES, E2EStack
from tests.e2e.workload import Workload
from tests.helpers import eventually
from tests.infra import ServerControl

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ANSWER_WITHIN_S = 60.0
"""httpx's own deadline per request: only a hung request reaches it (and fails the test)."""
STORE_UNAVAILABLE = "urn:leadtrail:problem:store-unavailable"
PROBE_IDS = {
    "lead_id": "lead_0000000000000000",
    "subject_id": "sub_0000000000000000",
    "request_id": "req_0000000000000000",
    "purpose": "marketing_email",
    "token": "not-a-token",
}


async def test_a_frozen_store_gets_503s_not_hangs_and_the_cluster_heals_by_itself(
    healthy: E2EStack, mongo_control: ServerControl
) -> None:
    workload = Workload(healthy)
    running = asyncio.create_task(workload.run_people(workload.mixed(16), concurrency=3))
    try:
        await eventually(
            lambda: _at_least(workload, 4), within=240, what="4 leads acknowledged first"
        )
        known = workload.acknowledged()[0]
        mongo_control.freeze()
        try:
            await _every_route_answers_without_the_store(healthy, str(known.lead_id))
            await _every_service_is_not_ready(healthy)
            lagging = await _consumers_stall_on_new_work(healthy, str(known.subject_id))
            await _cli_commands_fail_with_one_error_line(healthy, str(known.subject_id))
        finally:
            mongo_control.thaw()
        await running  # its 503s are retried with the same Idempotency-Key until they pass
    finally:
        running.cancel()

    counts = await workload.reconcile()
    assert counts["accepted"] == 16
    assert workload.retries["503"] > 0, "some requests did meet the frozen store"
    await _every_service_is_ready_again(healthy)
    await healthy.wait_for_zero_lag()
    for hold_id in lagging:
        await healthy.document("retention_holds", hold_id)
    print(f"store frozen mid-workload: {counts}, client retries: {dict(workload.retries)}")


async def _at_least(workload: Workload, count: int) -> bool | None:
    return True if len(workload.acknowledged()) >= count else None


def _routes(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (method, concrete path) of a service's API, path parameters filled in."""
    routes = []
    for template, operations in openapi["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: PROBE_IDS.get(m.group(1), "x"), template)
        routes += [(method.upper(), path) for method in operations]
    return routes


async def _every_route_answers_without_the_store(stack: E2EStack, lead_id: str) -> None:
    """Each route answers in time; an answer of 5xx is always a 503 with Retry-After."""
    headers = {**stack.cluster.auth("acme"), "Idempotency-Key": "frozen-probe"}
    needs_store: list[tuple[str, str, str]] = [
        ("lead_ingest", "GET", f"/v1/leads/{lead_id}"),
        ("lead_ingest", "GET", "/v1/aggregates"),
    ]
    seen_503 = set()
    for service in SERVICES:
        client = stack.client(service)
        # Generated from code, not read from the store: it answers while the store is frozen.
        openapi = (await client.get("/openapi.json", timeout=ANSWER_WITHIN_S)).json()
        for method, path in _routes(openapi) + [(m, p) for s, m, p in needs_store if s == service]:
            try:
                response = await client.request(
                    method, path, headers=headers, json={}, timeout=ANSWER_WITHIN_S
                )
            except httpx.TimeoutException:
                pytest.fail(f"{service} {method} {path} hung on a frozen store")
            if path.endswith("/readyz"):
                continue  # checked on its own below
            assert response.status_code < 500 or response.status_code == 503, (
                f"{service} {method} {path}: {response.status_code} {response.text[:300]}"
            )
            if response.status_code == 503:
                assert response.headers.get("Retry-After", "").isdigit(), (service, path)
                assert response.json()["type"] in {STORE_UNAVAILABLE}, response.text
                seen_503.add((service, method, path))
    for service, method, path in needs_store:
        assert (service, method, path) in seen_503, f"{service} {method} {path} did not 503"


async def _every_service_is_not_ready(stack: E2EStack) -> None:
    for service in SERVICES:
        client = stack.client(service)
        ready = await client.get("/readyz", timeout=ANSWER_WITHIN_S)
        assert ready.status_code == 503, f"{service}: {ready.text}"
        assert ready.json()["mongo"].startswith("error"), f"{service}: {ready.text}"
        assert ready.headers["Retry-After"].isdigit()
        alive = await client.get("/healthz", timeout=ANSWER_WITHIN_S)
        assert alive.status_code == 200, f"{service} /healthz: {alive.status_code}"


async def _consumers_stall_on_new_work(stack: E2EStack, subject_id: str) -> list[str]:
    """Kafka still works: an operator's legal hold reaches retention-scheduler and
    erasure-propagator, which cannot record it. They say so and commit nothing past it."""
    from ops.operator import place_hold

    async with stack.operator() as operator:
        placed = await place_hold(
            operator, tenant_id="acme", subject_id=subject_id, reason="freeze", placed_by="ops"
        )

    async def stalled() -> dict[str, Any] | None:
        answers = {
            service: (await stack.client(service).get("/readyz", timeout=ANSWER_WITHIN_S)).json()
            for service in ("retention_scheduler", "erasure_propagator")
        }
        return answers if all(a["consumers"] != "ok" for a in answers.values()) else None

    answers = await eventually(stalled, within=60, what="the hold's consumers to say stalled")
    for answer in answers.values():
        assert any("stalled for" in why for why in answer["consumers"].values()), answer
    lag = await stack.consumer_lag()
    assert lag["retention-scheduler"] > 0, f"committed past the hold: {lag}"
    assert lag["erasure-propagator"] > 0, f"committed past the hold: {lag}"
    return [str(placed.data["hold_id"])]


async def _cli_commands_fail_with_one_error_line(stack: E2EStack, subject_id: str) -> None:
    # What the services run with (the e2e cluster derives its integrity key from the KEK).
    env = {key: value for key, value in stack.env.items() if key.startswith("LEADTRAIL_")}
    env["LEADTRAIL_STORE_TIMEOUT_S"] = "2"
    commands = [
        ["holds", "list", "--tenant", "acme"],
        ["export", subject_id, "--tenant", "acme"],
        ["audit", subject_id, "--tenant", "acme"],
    ]
    for args in commands:
        # A real process, as an operator runs it (and its abandoned sockets die with it).
        command = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("leadtrail")),
            *args,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(command.communicate(), ANSWER_WITHIN_S)
        errors = [line for line in err.decode().splitlines() if line.startswith("error:")]
        assert command.returncode != 0, f"leadtrail {' '.join(args)}: exit 0 on a frozen store"
        assert len(errors) == 1, f"leadtrail {' '.join(args)}: {err.decode()[-500:]}"


async def _every_service_is_ready_again(stack: E2EStack) -> None:
    for service in SERVICES:

        async def ready(name: str = service) -> bool | None:
            answer = await stack.client(name).get("/readyz", timeout=ANSWER_WITHIN_S)
            return True if answer.status_code == 200 else None

        await eventually(ready, within=120, what=f"{service} ready again")
