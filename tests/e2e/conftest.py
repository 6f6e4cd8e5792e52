"""One cluster of five service processes shared by the end-to-end tests of this package.

Starting five Python processes costs seconds each on a small machine, so the tests share one
cluster; each keeps to its own people (see :mod:`tests.e2e.workload`), and the fault tests
restart what they kill before they end. The retention test moves time and so starts its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.e2e.stack import E2EStack, e2e_stack


@pytest.fixture(scope="package")
async def e2e(
    kafka_bootstrap: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[E2EStack]:
    async with e2e_stack(kafka_bootstrap, mongo_url, tmp_path_factory.mktemp("e2e")) as stack:
        yield stack


@pytest.fixture
async def healthy(e2e: E2EStack) -> AsyncIterator[E2EStack]:
    """The shared cluster, checked to have every process running again after the test."""
    yield e2e
    for name, process in e2e.processes.items():
        if not process.running:
            await e2e.restart(name)
    await e2e.hubspot.up()
