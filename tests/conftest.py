"""Session-wide Kafka and MongoDB-wire fixtures; the policy lives in :mod:`tests.infra`.

``kafka_bootstrap`` and ``mongo_url`` come from ``LEADTRAIL_KAFKA_BOOTSTRAP`` /
``LEADTRAIL_MONGO_URL`` if set, else from Testcontainers if a Docker engine answers, else from
local Kafka and mongo-java-server processes under pytest's temporary directory. Nothing starts
unless a selected test needs it, and when the selected tests need both, both start concurrently.

``kafka_control`` / ``mongo_control`` stop and restart the local servers in place. Where that
is impossible (external or Docker servers), the tests using them are deselected, and the
reason is printed in the terminal summary.
"""

from __future__ import annotations

import asyncio
import io
import signal
from collections.abc import Generator, Iterator
from types import FrameType
from typing import Any

import pytest

from tests.infra import InfraSession, ServerControl, Service, restart_unsupported_reason

_CONTROL_FIXTURES: dict[Service, str] = {"kafka": "kafka_control", "mongo": "mongo_control"}
_deselect_notes = pytest.StashKey[list[str]]()


def _fixtures_of(items: list[pytest.Item]) -> set[str]:
    names: set[str] = set()
    for item in items:
        names.update(getattr(item, "fixturenames", ()))
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect restart tests for servers that cannot be restarted in place."""
    deselected: list[pytest.Item] = []
    notes: list[str] = []
    for service, fixture in _CONTROL_FIXTURES.items():
        users = [item for item in items if fixture in getattr(item, "fixturenames", ())]
        if not users:
            continue
        reason = restart_unsupported_reason(service)
        if reason is not None:
            deselected.extend(users)
            notes.append(f"deselected {len(users)} test(s) using {fixture}: {reason}")
    if deselected:
        dropped = {id(item) for item in deselected}
        items[:] = [item for item in items if id(item) not in dropped]
        config.hook.pytest_deselected(items=deselected)
    config.stash[_deselect_notes] = notes


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    for note in config.stash.get(_deselect_notes, []):
        terminalreporter.write_line(note, yellow=True)


@pytest.hookimpl(wrapper=True)
def pytest_timeout_set_timer(
    item: pytest.Item, settings: Any
) -> Generator[None, bool | None, bool | None]:
    """Around pytest-timeout's signal method: at a timeout, first print where every asyncio
    task waits, then let its handler fail the test.

    The default dump shows only threads, and a hung async test's one thread is the event loop
    waiting in ``select``: the task that waits forever, and on what, is the part worth seeing.
    """
    installed = yield
    handler = signal.getsignal(signal.SIGALRM)
    if settings.method == "signal" and callable(handler):

        def on_timeout(signum: int, frame: FrameType | None) -> None:
            __tracebackhide__ = True
            item.config.get_terminal_writer().write(_asyncio_tasks())
            handler(signum, frame)

        signal.signal(signal.SIGALRM, on_timeout)
    return installed


def _asyncio_tasks() -> str:
    """Every pending task of the running event loop, with where it waits."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "(no running event loop)\n"
    out = io.StringIO()
    tasks = asyncio.all_tasks(loop)
    out.write(f"\n==== {len(tasks)} asyncio tasks pending at the timeout ====\n")
    for task in tasks:
        task.print_stack(limit=12, file=out)
    return out.getvalue()


@pytest.fixture(scope="session")
def leadtrail_infra(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InfraSession]:
    """The session's servers; starts what the selected tests need, all at once."""
    needed = _fixtures_of(request.session.items)
    with InfraSession(tmp_path_factory.mktemp("infra")) as infra:
        infra.prepare(
            kafka="kafka_bootstrap" in needed or "kafka_control" in needed,
            mongo="mongo_url" in needed or "mongo_control" in needed,
        )
        yield infra


@pytest.fixture(scope="session")
def kafka_bootstrap(leadtrail_infra: InfraSession) -> str:
    """``host:port`` of a Kafka broker with ``auto.create.topics.enable=false``."""
    return leadtrail_infra.kafka_bootstrap()


@pytest.fixture(scope="session")
def mongo_url(leadtrail_infra: InfraSession) -> str:
    """A ``mongodb://`` URL of MongoDB or the local mongo-java-server."""
    return leadtrail_infra.mongo_url()


@pytest.fixture
def kafka_control(leadtrail_infra: InfraSession) -> Iterator[ServerControl]:
    """Stop/start/restart/freeze the local broker; it is running (and thawed) after the test."""
    control = leadtrail_infra.control("kafka")
    yield control
    control.thaw()
    control.start()


@pytest.fixture
def mongo_control(leadtrail_infra: InfraSession) -> Iterator[ServerControl]:
    """Stop/start/restart/freeze the local store; it is running (and thawed) after the test."""
    control = leadtrail_infra.control("mongo")
    yield control
    control.thaw()
    control.start()
