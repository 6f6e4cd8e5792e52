"""After everything the other end-to-end tests did to the shared cluster (journeys, erasures,
kills, restarts, poison messages, the load), every service's read models rebuilt from the
topics equal the live ones (R31, R34). Runs after them: pytest orders the files by name."""

from __future__ import annotations

import pytest

from ops.replay import compare, consumer_lag, replay
from ops.replay_services import SERVICES
from tests.e2e.stack import E2EStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


async def test_every_read_model_rebuilt_from_the_log_equals_the_live_one(e2e: E2EStack) -> None:
    await e2e.wait_for_zero_lag()
    async with e2e.mongo() as db:
        try:
            for spec in SERVICES.values():
                result = await replay(
                    spec,
                    bootstrap=e2e.bootstrap,
                    topic_prefix=e2e.prefix,
                    db=db,
                    suffix="e2e",
                    concurrency=4,
                )
                assert result.failed == [], spec.service
                assert result.applied > 0, spec.service
                lags = await consumer_lag(spec, e2e.bootstrap, e2e.prefix, result.ranges)
                assert lags == [], f"{spec.service}: live and replay read different offsets"
                differences = await compare(spec, db, "e2e")
                assert [str(d) for d in differences] == [], spec.service
        finally:
            for spec in SERVICES.values():
                for name in spec.read_models:
                    await db.drop_collection(f"{name}_e2e")
