"""The local stack behind ``make up``: Kafka, the MongoDB-wire store, the topics and the
five services.

Everything runs as separate processes on free loopback ports, with state and logs under
``.run/`` (``.run/logs/<service>.log``). ``.run/stack.env`` tells the CLI, benchmarks and other
tools where everything listens; ``.run/secrets.env`` (mode 0600) holds the key-encryption key,
generated once so a restarted stack can still read its own events.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from devstack.errors import InfraError
from devstack.kafka import start_kafka, stop_kafka
from devstack.mongo_server import start_mongo, stop_mongo
from devstack.paths import default_run_root
from devstack.process import (
    free_port,
    log_tail,
    read_pid,
    spawn_detached,
    terminate,
    wait_until_healthy,
)
from services import declarations
from services.common.topics import ensure_topics

__all__ = [
    "CONSOLE",
    "PROCESSES",
    "SERVICES",
    "ServiceProcess",
    "stack_down",
    "stack_status",
    "stack_up",
]

TOPIC_PREFIX = "leadtrail."
SECRET_KEYS = (
    "LEADTRAIL_KEK",
    "LEADTRAIL_BLIND_INDEX_KEY",
    "LEADTRAIL_UNSUBSCRIBE_KEY",
    "LEADTRAIL_INTEGRITY_KEY",
)
MONGO_DB = "leadtrail"
NEVER_PASSED = frozenset({"LEADTRAIL_TEST_CLOCK_OFFSET_FILE", "LEADTRAIL_ENABLE_TEST_CLOCK"})
"""The TEST ONLY clock's settings: an operator's shell may have them from a test session, and
they would let whoever writes the offset file expire every lead. ``make up`` drops them."""


def operator_environment(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The operator's environment as the services of ``make up`` inherit it: without the
    test clock's settings (:data:`NEVER_PASSED`)."""
    return {name: value for name, value in environ.items() if name not in NEVER_PASSED}


@dataclass(frozen=True)
class ServiceDef:
    name: str
    module: str
    """``python -m <module>`` runs it."""

    @property
    def env_name(self) -> str:
        return f"LEADTRAIL_{self.name.upper().replace('-', '_')}_URL"


SERVICES: tuple[ServiceDef, ...] = tuple(
    ServiceDef(declaration.name, declaration.package) for declaration in declarations()
)
"""The services of ``services.declarations()``, started in that order."""
CONSOLE = ServiceDef("console", "console")
"""The privacy operations console: started once the services answer (it reads their URLs)."""
PROCESSES: tuple[ServiceDef, ...] = (*SERVICES, CONSOLE)


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    module: str
    url: str
    pid: int
    log: str


def _secrets(run_root: Path) -> dict[str, str]:
    """The stack's secret keys, generated once (mode 0600) and kept across restarts."""
    path = run_root / "secrets.env"
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key] = value
    missing = [name for name in SECRET_KEYS if name not in values]
    if missing:
        for name in missing:
            values[name] = base64.b64encode(secrets.token_bytes(32)).decode()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return values


def _ready(url: str) -> Callable[[float], str | None]:
    def probe(budget: float) -> str | None:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=budget) as response:  # noqa: S310
                return None if response.status == 200 else f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            return f"HTTP {error.code}"
        except OSError as error:
            return str(error)

    return probe


def _start_service(
    service: ServiceDef, run_root: Path, env: dict[str, str], timeout: float
) -> ServiceProcess:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = run_root / "logs" / f"{service.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    pid = spawn_detached(
        [sys.executable, "-m", service.module],
        cwd=Path.cwd(),
        log_file=log,
        pid_file=run_root / "pids" / f"{service.name}.pid",
        # Each service's own URL: the links it hands out start with it (never with a request's
        # Host header); an operator's LEADTRAIL_PUBLIC_URL would name one service for all five.
        env={**env, "LEADTRAIL_HTTP_PORT": str(port), "LEADTRAIL_PUBLIC_URL": url},
    )
    wait_until_healthy(_ready(url), pid=pid, what=service.name, timeout=timeout, log_file=log)
    return ServiceProcess(service.name, service.module, url, pid, str(log))


def stack_up(run_root: Path | None = None, *, timeout: float = 90.0) -> list[ServiceProcess]:
    """Start everything (idempotent for the infrastructure) and write ``.run/stack.env``."""
    run_root = run_root or default_run_root()
    (run_root / "pids").mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        kafka_future = pool.submit(start_kafka, run_root / "kafka")
        mongo_future = pool.submit(start_mongo, run_root / "mongo")
        kafka, mongo = kafka_future.result(), mongo_future.result()
    asyncio.run(ensure_topics(kafka.bootstrap, TOPIC_PREFIX))
    env = {
        **operator_environment(os.environ),
        **_secrets(run_root),
        "LEADTRAIL_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "LEADTRAIL_MONGO_URL": mongo.url,
        "LEADTRAIL_MONGO_DB": MONGO_DB,
        "LEADTRAIL_TOPIC_PREFIX": TOPIC_PREFIX,
        "LEADTRAIL_CONFIG_DIR": str(run_root / "config"),
    }
    stack_down(run_root, services_only=True)
    started: list[ServiceProcess] = []
    try:
        with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
            futures = [pool.submit(_start_service, s, run_root, env, timeout) for s in SERVICES]
            for future in futures:
                started.append(future.result())
        service_urls = {s.env_name: p.url for s, p in zip(SERVICES, started, strict=True)}
        started.append(_start_service(CONSOLE, run_root, {**env, **service_urls}, timeout))
    except InfraError:
        stack_down(run_root, services_only=True)
        raise
    (run_root / "stack.json").write_text(
        json.dumps([asdict(process) for process in started], indent=2) + "\n"
    )
    lines = [
        f"LEADTRAIL_KAFKA_BOOTSTRAP={kafka.bootstrap}",
        f"LEADTRAIL_MONGO_URL={mongo.url}",
        f"LEADTRAIL_MONGO_DB={MONGO_DB}",
        f"LEADTRAIL_TOPIC_PREFIX={TOPIC_PREFIX}",
        f"LEADTRAIL_CONFIG_DIR={run_root / 'config'}",
        *(f"{s.env_name}={p.url}" for s, p in zip(PROCESSES, started, strict=True)),
    ]
    (run_root / "stack.env").write_text("\n".join(lines) + "\n")
    return started


def _recorded(run_root: Path) -> list[ServiceProcess]:
    known = {f.name for f in fields(ServiceProcess)}
    try:
        return [
            # fields of older records (a "label") are dropped, so ``make down`` still stops them
            ServiceProcess(**{key: value for key, value in item.items() if key in known})
            for item in json.loads((run_root / "stack.json").read_text())
        ]
    except (OSError, ValueError, TypeError):
        return []


def stack_down(run_root: Path | None = None, *, services_only: bool = False) -> None:
    """Stop the services (SIGTERM, then SIGKILL after 20 s), then Kafka and the store."""
    run_root = run_root or default_run_root()
    for service in reversed(PROCESSES):
        pid = read_pid(run_root / "pids" / f"{service.name}.pid", marker=service.module)
        if pid is not None:
            terminate(pid, timeout=20.0)
    (run_root / "stack.json").unlink(missing_ok=True)
    if services_only:
        return
    (run_root / "stack.env").unlink(missing_ok=True)
    stop_kafka(run_root / "kafka")
    stop_mongo(run_root / "mongo")


def stack_status(run_root: Path | None = None) -> list[tuple[str, str]]:
    """(name, state) for every part of the stack."""
    run_root = run_root or default_run_root()
    rows = []
    recorded = {process.name: process for process in _recorded(run_root)}
    for service in PROCESSES:
        pid = read_pid(run_root / "pids" / f"{service.name}.pid", marker=service.module)
        process = recorded.get(service.name)
        state = f"running pid {pid} at {process.url}" if pid and process else "stopped"
        rows.append((service.name, state))
    return rows


def watch(run_root: Path, processes: list[ServiceProcess], *, poll: float = 1.0) -> int:
    """Block until SIGINT/SIGTERM or until a service dies; then stop everything.

    Returns the exit code: 0 after a signal, 1 when a service died on its own.
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    code = 0
    while not stop.wait(poll):
        dead = [
            p
            for p in processes
            if read_pid(run_root / "pids" / f"{p.name}.pid", marker=p.module) is None
        ]
        if dead:
            for process in dead:
                print(
                    f"{process.name} exited; last lines of {process.log}:\n"
                    f"{log_tail(Path(process.log))}",
                    file=sys.stderr,
                )
            code = 1
            break
    print("stopping Leadtrail ...", file=sys.stderr)
    started = time.monotonic()
    stack_down(run_root)
    print(f"stopped in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return code
