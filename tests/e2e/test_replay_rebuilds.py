"""After everything the other end-to-end tests did to the shared cluster (journeys, erasures,
kills, restarts, poison messages, the load), every service's read models rebuilt from the
topics equal the live ones (R31, R34). Runs after them: pytest orders the files by name.

Live, the services read their topics in several consumer groups (or one group over several
topics), so a subject's events from different topics were applied in another order than the
replay's merge by timestamp; the read models must not depend on that order
(tests/integration/replay/test_order_property.py)."""

from __future__ import annotations

from pprint import pformat

import pytest

from ops.replay import SERVICES
from tests.e2e.stack import E2EStack
from tests.replay_check import replay_problems

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


async def test_every_read_model_rebuilt_from_the_log_equals_the_live_one(e2e: E2EStack) -> None:
    await e2e.wait_for_zero_lag()
    async with e2e.mongo() as db:
        try:
            # The fault tests put a poison message on every topic (live dead-lettered them).
            problems = await replay_problems(
                e2e.bootstrap, e2e.prefix, db, "e2e", poison_expected=True
            )
        finally:
            for spec in SERVICES.values():
                for name in spec.read_models:
                    await db.drop_collection(f"{name}_e2e")
    assert problems == {}, pformat(problems, width=100)
