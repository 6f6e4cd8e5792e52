"""``python -m devstack servers``: start, stop and check the local Kafka and MongoDB-wire store.

Only connection settings go to stdout (``LEADTRAIL_KAFKA_BOOTSTRAP=...``), so the output of
``start``/``up``/``status`` can be fed to ``eval`` or appended to an env file; progress and
errors go to stderr.

Exit codes: 0 ok; 1 failure (or, for ``status``, running but not healthy); 3 ``status`` of a
server that is not running (the LSB convention).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from devstack import kafka, mongo_server
from devstack.errors import InfraError
from devstack.paths import KAFKA_BOOTSTRAP_ENV, MONGO_URL_ENV, default_run_root

EXIT_NOT_RUNNING = 3


@dataclass(frozen=True)
class _Service:
    """What the CLI needs to know about one server."""

    name: str
    command: str
    env_var: str
    default_timeout: float
    start: Callable[[Path, float], tuple[str, int]]
    stop: Callable[[Path, bool], None]
    running: Callable[[Path], tuple[str, int] | None]
    probe: Callable[[str, float], str | None]
    log: Callable[[Path], Path]


def _start_kafka(run_dir: Path, timeout: float) -> tuple[str, int]:
    server = kafka.start_kafka(run_dir, timeout=timeout)
    return server.bootstrap, server.pid


def _running_kafka(run_dir: Path) -> tuple[str, int] | None:
    server = kafka.running_kafka(run_dir)
    return (server.bootstrap, server.pid) if server else None


def _start_mongo(run_dir: Path, timeout: float) -> tuple[str, int]:
    server = mongo_server.start_mongo(run_dir, timeout=timeout)
    return server.url, server.pid


def _running_mongo(run_dir: Path) -> tuple[str, int] | None:
    server = mongo_server.running_mongo(run_dir)
    return (server.url, server.pid) if server else None


KAFKA = _Service(
    name="Kafka",
    command="kafka",
    env_var=KAFKA_BOOTSTRAP_ENV,
    default_timeout=90.0,
    start=_start_kafka,
    stop=lambda run_dir, graceful: kafka.stop_kafka(run_dir, graceful=graceful),
    running=_running_kafka,
    probe=kafka.probe_kafka,
    log=kafka.kafka_log,
)
MONGO = _Service(
    name="MongoDB-wire store (mongo-java-server)",
    command="mongo",
    env_var=MONGO_URL_ENV,
    default_timeout=60.0,
    start=_start_mongo,
    stop=lambda run_dir, graceful: mongo_server.stop_mongo(run_dir, graceful=graceful),
    running=_running_mongo,
    probe=mongo_server.probe_mongo,
    log=mongo_server.mongo_log,
)
SERVICES = (KAFKA, MONGO)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    _say(message)
    return typer.Exit(code)


def _start(service: _Service, run_dir: Path, timeout: float | None) -> str:
    """Start one service; return its env line. Raises InfraError."""
    began = time.monotonic()
    was_running = service.running(run_dir) is not None
    address, pid = service.start(run_dir, timeout if timeout else service.default_timeout)
    how = "was already running" if was_running else "started"
    _say(
        f"{service.name} {how}, healthy after {time.monotonic() - began:.1f}s "
        f"(pid {pid}, log {service.log(run_dir)})"
    )
    return f"{service.env_var}={address}"


def _status(service: _Service, run_dir: Path) -> int:
    found = service.running(run_dir)
    if found is None:
        _say(f"{service.name}: not running (run dir {run_dir.resolve()})")
        return EXIT_NOT_RUNNING
    address, pid = found
    problem = service.probe(address, 5.0)
    if problem:
        _say(f"{service.name}: running (pid {pid}) but not healthy: {problem}")
        return 1
    _say(f"{service.name}: running and healthy (pid {pid})")
    print(f"{service.env_var}={address}", flush=True)
    return 0


RunDir = Annotated[Path, typer.Option("--run-dir", help="State, data and log directory.")]
Timeout = Annotated[
    float | None, typer.Option("--timeout", help="Seconds to wait for health (default per server).")
]
Kill = Annotated[bool, typer.Option("--kill", help="SIGKILL at once instead of a clean stop.")]


def _service_app(service: _Service) -> typer.Typer:
    sub = typer.Typer(help=f"Manage the local {service.name}.", no_args_is_help=True)
    default_dir = default_run_root() / service.command

    @sub.command()
    def start(run_dir: RunDir = default_dir, timeout: Timeout = None) -> None:
        """Start (or adopt) the server and print its connection setting once healthy."""
        try:
            print(_start(service, run_dir, timeout), flush=True)
        except InfraError as exc:
            raise _fail(f"{service.name} failed to start: {exc}") from None

    @sub.command()
    def stop(run_dir: RunDir = default_dir, kill: Kill = False) -> None:
        """Stop the server (a no-op if it is not running)."""
        try:
            service.stop(run_dir, not kill)
        except InfraError as exc:
            raise _fail(f"{service.name} failed to stop: {exc}") from None
        _say(f"{service.name}: stopped")

    @sub.command()
    def restart(run_dir: RunDir = default_dir, timeout: Timeout = None, kill: Kill = False) -> None:
        """Stop and start again on the same ports and data."""
        try:
            service.stop(run_dir, not kill)
            print(_start(service, run_dir, timeout), flush=True)
        except InfraError as exc:
            raise _fail(f"{service.name} failed to restart: {exc}") from None

    @sub.command()
    def status(run_dir: RunDir = default_dir) -> None:
        """Exit 0 and print the connection setting if healthy; 3 if not running."""
        raise typer.Exit(_status(service, run_dir))

    return sub


app = typer.Typer(
    help="Local infrastructure for Leadtrail: Kafka (KRaft) and a MongoDB-wire store, no Docker.",
    no_args_is_help=True,
    add_completion=False,
)
for _service in SERVICES:
    app.add_typer(_service_app(_service), name=_service.command)

DEFAULT_RUN_ROOT = default_run_root()
RunRoot = Annotated[
    Path, typer.Option("--run-dir", help="Parent directory; each server uses a subdirectory.")
]


@app.command()
def up(run_dir: RunRoot = DEFAULT_RUN_ROOT, timeout: Timeout = None) -> None:
    """Start Kafka and the store concurrently; print both connection settings."""
    with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
        futures = [
            (service, pool.submit(_start, service, run_dir / service.command, timeout))
            for service in SERVICES
        ]
    failed = False
    for service, future in futures:
        try:
            print(future.result(), flush=True)
        except InfraError as exc:
            _say(f"{service.name} failed to start: {exc}")
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command()
def down(run_dir: RunRoot = DEFAULT_RUN_ROOT, kill: Kill = False) -> None:
    """Stop Kafka and the store."""
    failed = False
    for service in SERVICES:
        try:
            service.stop(run_dir / service.command, not kill)
            _say(f"{service.name}: stopped")
        except InfraError as exc:
            _say(f"{service.name} failed to stop: {exc}")
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command("status")
def status_all(run_dir: RunRoot = DEFAULT_RUN_ROOT) -> None:
    """Status of both servers; exit code is the worst of the two."""
    codes = [_status(service, run_dir / service.command) for service in SERVICES]
    raise typer.Exit(max(codes))


@app.command()
def install() -> None:
    """Fetch the Kafka and store jars into the cache (done by `start` if needed)."""
    try:
        _say(f"Kafka jars: {kafka.kafka_libs()}")
        _say(f"store classpath: {mongo_server.server_classpath()}")
    except InfraError as exc:
        raise _fail(str(exc)) from None
