"""The store round-trip budget of the batched pipeline (issue 14), counted, never timed.

``bench.roundtrips`` runs on a fresh stack of its own (the five services as processes, with the
production defaults: the e2e stack's short loop intervals would add idle polling to the count):
``LEADS`` leads captured, each sent one qualifying interaction and pushed to a CRM, then
``ERASURES`` of their people erased, ``CLIENTS`` requests in flight at once. Every store
command each service sends is counted by its ``CommandListener`` (``/metrics``), and the whole
cluster must stay within:

* at most 12 store round trips per lead from capture through the CRM push;
* at most 15 per erasure.

(That nothing is sent while idle is tests/integration/test_idle_store_commands.py.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.roundtrips import run
from devstack.stack import stack_down, stack_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

LEADS = 240
ERASURES = 60
CLIENTS = 32
PER_LEAD = 12.0
PER_ERASURE = 15.0


def _stack_env(run_root: Path) -> dict[str, str]:
    """Where the fresh stack listens, from its own files only (not this process's env)."""
    values: dict[str, str] = {}
    for name in ("stack.env", "secrets.env"):
        for line in (run_root / name).read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key] = value
    return values


async def test_a_lead_and_an_erasure_stay_within_their_store_round_trip_budget(
    tmp_path: Path,
) -> None:
    run_root = tmp_path / "stack"
    await asyncio.to_thread(stack_up, run_root)
    try:
        result = await run(
            _stack_env(run_root),
            leads=LEADS,
            erasures=ERASURES,
            idle_seconds=3.0,
            patience=300.0,
            clients=CLIENTS,
        )
    finally:
        await asyncio.to_thread(stack_down, run_root)
    capture, push = result["per_lead_capture"], result["per_lead_qualify_push"]
    per_lead = capture["store_commands"] + push["store_commands"]
    per_erasure = result["per_erasure"]["store_commands"]
    print(
        f"\nround trips: {per_lead:.2f} per lead (capture {capture['store_commands']}, "
        f"qualify + push {push['store_commands']}), {per_erasure:.2f} per erasure; by service: "
        f"{capture['store_commands_by_service']} / {push['store_commands_by_service']} / "
        f"{result['per_erasure']['store_commands_by_service']}"
    )
    assert per_lead <= PER_LEAD, capture["store_commands_by_command"]
    assert per_erasure <= PER_ERASURE, result["per_erasure"]["store_commands_by_command"]
