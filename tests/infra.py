"""Which Kafka and MongoDB-wire server tests, e2e runs and benchmarks talk to.

For each of the two, in order of preference:

1. **external** - ``LEADTRAIL_KAFKA_BOOTSTRAP`` / ``LEADTRAIL_MONGO_URL`` are set: use them as
   they are; nothing is started or stopped.
2. **docker** - a Docker engine answers: Testcontainers' ``KafkaContainer`` (KRaft) and
   ``MongoDbContainer``.
3. **local** - the local Kafka and mongo-java-server processes of :mod:`devstack.kafka` and
   :mod:`devstack.mongo_server`, in a run directory of the caller's choosing.

``LEADTRAIL_INFRA=local|docker`` skips the Docker probe and forces one of the last two. Only
local servers can be stopped and restarted in place (same address, same data), which fault
tests need; :func:`restart_unsupported_reason` says why not otherwise.

Typical use (pytest fixtures do the same in ``tests/conftest.py``)::

    with InfraSession(run_root) as infra:
        infra.prepare(kafka=True, mongo=True)   # both start concurrently in the background
        bootstrap, url = infra.kafka_bootstrap(), infra.mongo_url()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

from devstack import kafka, mongo_server, process
from devstack.errors import InfraError
from devstack.paths import INFRA_MODE_ENV, KAFKA_BOOTSTRAP_ENV, MONGO_URL_ENV

Service = Literal["kafka", "mongo"]
SERVICE_ENV: Mapping[Service, str] = {"kafka": KAFKA_BOOTSTRAP_ENV, "mongo": MONGO_URL_ENV}

KAFKA_IMAGE_ENV = "LEADTRAIL_KAFKA_IMAGE"
MONGO_IMAGE_ENV = "LEADTRAIL_MONGO_IMAGE"
# Testcontainers' KafkaContainer drives the Confluent image's scripts (7.x = Kafka 3.x).
DEFAULT_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
DEFAULT_MONGO_IMAGE = "mongo:7.0"


class Mode(StrEnum):
    """Where a server comes from."""

    EXTERNAL = "external"
    DOCKER = "docker"
    LOCAL = "local"


# ---------------------------------------------------------------------------- mode selection


def _docker_endpoint(env: Mapping[str, str]) -> tuple[str, str | tuple[str, int]] | None:
    """``("unix", path)`` or ``("tcp", (host, port))`` for a plain-HTTP Docker API, if any."""
    host = env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    parsed = urllib.parse.urlparse(host)
    if parsed.scheme == "unix":
        return "unix", parsed.path
    if parsed.scheme == "tcp" and parsed.hostname and not env.get("DOCKER_TLS_VERIFY"):
        return "tcp", (parsed.hostname, parsed.port or 2375)
    return None


def docker_available(timeout: float = 2.0, env: Mapping[str, str] | None = None) -> bool:
    """Whether a Docker engine answers ``GET /_ping`` within ``timeout`` seconds.

    Probed with a raw socket rather than ``docker.from_env()``: that raises when nothing
    answers *and* leaks its socket, a ResourceWarning that fails a ``-W error`` test run.
    Endpoints a raw socket cannot speak to (TLS, ssh) count as available; Testcontainers
    then reports any real problem.
    """
    endpoint = _docker_endpoint(os.environ if env is None else env)
    if endpoint is None:
        return True
    return _ping_docker(*endpoint, timeout=timeout)


@functools.cache
def _ping_docker(kind: str, address: str | tuple[str, int], *, timeout: float) -> bool:
    """One probe per endpoint and process: collection hooks and fixtures all ask."""
    family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(1024)
    except OSError:
        return False
    return reply.startswith(b"HTTP/") and b" 200 " in reply.split(b"\r\n", 1)[0]


def select_mode(service: Service, env: Mapping[str, str] | None = None) -> Mode:
    """How ``service`` is provided under ``env`` (default: this process's environment)."""
    env = os.environ if env is None else env
    if env.get(SERVICE_ENV[service]):
        return Mode.EXTERNAL
    forced = env.get(INFRA_MODE_ENV, "").strip().lower()
    if forced:
        if forced not in {Mode.LOCAL, Mode.DOCKER}:
            raise InfraError(f"{INFRA_MODE_ENV}={forced!r}: expected 'local' or 'docker'")
        return Mode(forced)
    return Mode.DOCKER if docker_available(env=env) else Mode.LOCAL


def restart_unsupported_reason(
    service: Service, env: Mapping[str, str] | None = None
) -> str | None:
    """``None`` if ``service`` can be stopped and restarted in place, else why not."""
    mode = select_mode(service, env)
    if mode is Mode.EXTERNAL:
        return f"{SERVICE_ENV[service]} points at an external server, which tests must not restart"
    if mode is Mode.DOCKER:
        return (
            f"{service} runs in Docker, where a restart changes the mapped port; "
            f"set {INFRA_MODE_ENV}=local to run restart tests"
        )
    return None


# ---------------------------------------------------------------------------- control


class ServerControl:
    """Stop, start, restart, freeze and thaw one local server in place: same address, same data.

    For fault tests. The methods block; the ``a``-prefixed ones run them in a thread so an
    async test's event loop (and the clients on it) keeps running meanwhile.
    """

    def __init__(
        self,
        name: str,
        address: str,
        start: Callable[[], object],
        stop: Callable[[bool], None],
        pid: Callable[[], int | None],
    ) -> None:
        self.name = name
        self.address = address
        self._start = start
        self._stop = stop
        self._pid = pid

    def freeze(self) -> None:
        """Wedge the server: SIGSTOP. Its port stays open and accepts connections, but nothing
        answers, the way a deadlocked or swapping server behaves. :meth:`thaw` undoes it."""
        pid = self._pid()
        if pid is None:
            raise InfraError(f"{self.name} is not running; nothing to freeze")
        process.pause(pid)

    def thaw(self) -> None:
        """Let a frozen server run again (SIGCONT); a no-op for a running one."""
        pid = self._pid()
        if pid is not None:
            process.resume(pid)

    def __repr__(self) -> str:
        return f"ServerControl({self.name} at {self.address})"

    def stop(self, *, graceful: bool = True) -> None:
        """Stop the server: SIGTERM (clean shutdown) or, with ``graceful=False``, SIGKILL."""
        self._stop(graceful)

    def start(self) -> None:
        """Start it again (a no-op if it is running) and wait until it is healthy."""
        self._start()

    def restart(self, *, graceful: bool = True) -> None:
        """:meth:`stop` then :meth:`start`."""
        self.stop(graceful=graceful)
        self.start()

    async def astop(self, *, graceful: bool = True) -> None:
        """:meth:`stop` without blocking the event loop."""
        await asyncio.to_thread(self.stop, graceful=graceful)

    async def astart(self) -> None:
        """:meth:`start` without blocking the event loop."""
        await asyncio.to_thread(self.start)

    async def arestart(self, *, graceful: bool = True) -> None:
        """:meth:`restart` without blocking the event loop."""
        await asyncio.to_thread(self.restart, graceful=graceful)


# ---------------------------------------------------------------------------- session


class _HasPid(Protocol):
    @property
    def pid(self) -> int: ...


def _pid_of(server: _HasPid | None) -> int | None:
    return None if server is None else server.pid


class _Container(Protocol):
    def stop(self, force: bool = True, delete_volume: bool = True) -> None: ...


def wait_for(probe: Callable[[float], str | None], *, what: str, timeout: float) -> None:
    """Poll ``probe`` (as in :func:`devstack.process.wait_until_healthy`) for a server
    this process did not start."""
    deadline = time.monotonic() + timeout
    while (problem := probe(min(5.0, max(deadline - time.monotonic(), 0.5)))) is not None:
        if time.monotonic() >= deadline:
            raise InfraError(f"{what} not healthy after {timeout:.0f}s: {problem}")
        time.sleep(0.25)


class InfraSession:
    """Provides Kafka and a MongoDB-wire server for one test session or benchmark run.

    Nothing starts until asked for; :meth:`prepare` starts servers concurrently in the
    background, and the accessors wait for them. :meth:`close` stops what this session
    started (never external servers).
    """

    def __init__(
        self,
        run_root: Path,
        *,
        env: Mapping[str, str] | None = None,
        kafka_timeout: float = 120.0,
        mongo_timeout: float = 90.0,
    ) -> None:
        self.run_root = run_root
        self._env: Mapping[str, str] = dict(os.environ if env is None else env)
        self._timeouts: dict[Service, float] = {"kafka": kafka_timeout, "mongo": mongo_timeout}
        self._lock = threading.Lock()
        self._docker_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="leadtrail-infra")
        self._futures: dict[Service, Future[str]] = {}
        self._containers: list[_Container] = []
        self._local: dict[Service, Path] = {}
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def mode(self, service: Service) -> Mode:
        """How ``service`` is (or would be) provided."""
        return select_mode(service, self._env)

    def prepare(self, *, kafka: bool = False, mongo: bool = False) -> None:
        """Start the requested servers in the background (idempotent)."""
        if kafka:
            self._future("kafka")
        if mongo:
            self._future("mongo")

    def kafka_bootstrap(self) -> str:
        """``host:port`` of Kafka, starting it if needed."""
        return self._future("kafka").result()

    def mongo_url(self) -> str:
        """A ``mongodb://`` URL, starting the server if needed."""
        return self._future("mongo").result()

    def control(self, service: Service) -> ServerControl:
        """A :class:`ServerControl` for a local server (started if needed).

        Raises :class:`InfraError` if ``service`` is external or in Docker.
        """
        reason = restart_unsupported_reason(service, self._env)
        if reason is not None:
            raise InfraError(f"cannot control {service}: {reason}")
        address = self._future(service).result()
        run_dir = self._local[service]
        if service == "kafka":
            timeout = self._timeouts["kafka"]
            return ServerControl(
                "Kafka",
                address,
                lambda: kafka.start_kafka(run_dir, timeout=timeout),
                lambda graceful: kafka.stop_kafka(run_dir, graceful=graceful),
                lambda: _pid_of(kafka.running_kafka(run_dir)),
            )
        timeout = self._timeouts["mongo"]
        return ServerControl(
            "the store",
            address,
            lambda: mongo_server.start_mongo(run_dir, timeout=timeout),
            lambda graceful: mongo_server.stop_mongo(run_dir, graceful=graceful),
            lambda: _pid_of(mongo_server.running_mongo(run_dir)),
        )

    def close(self) -> None:
        """Stop every server this session started; raise if any of them failed to stop."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            futures = list(self._futures.values())
        # Let starts in flight finish first, so that their servers get stopped too.
        concurrent.futures.wait(futures)
        self._pool.shutdown(wait=True)
        errors: list[str] = []
        for service, run_dir in self._local.items():
            try:
                if service == "kafka":
                    kafka.stop_kafka(run_dir)
                else:
                    mongo_server.stop_mongo(run_dir)
            except InfraError as exc:
                errors.append(str(exc))
        for container in self._containers:
            try:
                container.stop()
            except Exception as exc:  # report every failure, keep stopping the rest
                errors.append(f"stopping a container: {exc}")
        if errors:
            raise InfraError("\n".join(errors))

    # ------------------------------------------------------------------------ internals

    def _future(self, service: Service) -> Future[str]:
        with self._lock:
            if self._closed:
                raise InfraError("InfraSession is closed")
            future = self._futures.get(service)
            if future is None:
                future = self._pool.submit(self._provide, service)
                self._futures[service] = future
            return future

    def _provide(self, service: Service) -> str:
        mode = self.mode(service)
        if mode is Mode.EXTERNAL:
            return self._env[SERVICE_ENV[service]]
        if mode is Mode.DOCKER:
            return self._docker_kafka() if service == "kafka" else self._docker_mongo()
        run_dir = self.run_root / ("kafka" if service == "kafka" else "mongo")
        self._local[service] = run_dir
        if service == "kafka":
            return kafka.start_kafka(run_dir, timeout=self._timeouts["kafka"]).bootstrap
        return mongo_server.start_mongo(run_dir, timeout=self._timeouts["mongo"]).url

    def _docker_kafka(self) -> str:
        from testcontainers.community.kafka import KafkaContainer  # only needed with Docker

        image = self._env.get(KAFKA_IMAGE_ENV, DEFAULT_KAFKA_IMAGE)
        # Match the local broker: explicit topics only, 3 partitions, no rebalance delay.
        container = (
            KafkaContainer(image)
            .with_kraft()
            .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
            .with_env("KAFKA_NUM_PARTITIONS", "3")
            .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        )
        timeout = self._timeouts["kafka"]
        with self._docker_lock:  # Testcontainers starts its reaper container lazily, unlocked
            container.start(timeout=int(timeout))
            self._containers.append(container)
        bootstrap = container.get_bootstrap_server()
        wait_for(lambda budget: kafka.probe_kafka(bootstrap, budget), what="Kafka", timeout=timeout)
        return bootstrap

    def _docker_mongo(self) -> str:
        from testcontainers.community.mongodb import MongoDbContainer

        container = MongoDbContainer(self._env.get(MONGO_IMAGE_ENV, DEFAULT_MONGO_IMAGE))
        with self._docker_lock:
            container.start()
            self._containers.append(container)
        url = container.get_connection_url()
        # The image's entrypoint runs a temporary mongod first, which logs the same "waiting
        # for connections" line Testcontainers waits for; ping until the real one answers.
        wait_for(
            lambda budget: mongo_server.probe_mongo(url, budget),
            what="MongoDB",
            timeout=self._timeouts["mongo"],
        )
        return url
