"""After everything the other end-to-end tests did to the shared cluster (journeys, erasures,
kills, restarts, poison messages, the load), every service's read models rebuilt from the
topics equal the live ones (R31, R34). Runs after them: pytest orders the files by name.

Live, the services read their topics in several consumer groups (or one group over several
topics), so a subject's events from different topics were applied in another order than the
replay's merge by timestamp; the read models must not depend on that order
(tests/integration/replay/test_order_property.py)."""

from __future__ import annotations

import pytest

from ops.replay import compare, consumer_lag, replay
from ops.replay_services import SERVICES
from tests.e2e.stack import E2EStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


async def test_every_read_model_rebuilt_from_the_log_equals_the_live_one(e2e: E2EStack) -> None:
    await e2e.wait_for_zero_lag()
    problems: dict[str, list[str]] = {}
    async with e2e.mongo() as db:
        try:
            # Every service first, then one assertion: a failure reports all of them.
            for spec in SERVICES.values():
                result = await replay(
                    spec,
                    bootstrap=e2e.bootstrap,
                    topic_prefix=e2e.prefix,
                    db=db,
                    suffix="e2e",
                )
                found = [f"failed: {failure}" for failure in result.failed]
                if result.applied == 0:
                    found.append("nothing applied")
                lags = await consumer_lag(spec, e2e.bootstrap, e2e.prefix, result.ranges)
                found += [f"live and replay read different offsets: {lag}" for lag in lags]
                found += [str(difference) for difference in await compare(spec, db, "e2e")]
                if found:
                    problems[spec.service] = found
        finally:
            for spec in SERVICES.values():
                for name in spec.read_models:
                    await db.drop_collection(f"{name}_e2e")
    assert problems == {}
