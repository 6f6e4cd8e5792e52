"""The composition root every service shares: settings, logging, clients, the HTTP app.

A service declares itself once (:class:`~services.common.declaration.ServiceDeclaration`).
:func:`create_app` builds it on a :class:`Runtime`, registers its subscriptions with the one
object that handles them, and returns a FastAPI application whose lifespan connects MongoDB and
Kafka, starts the subscribers and background loops and reports readiness on ``GET /readyz``;
``GET /metrics`` serves its Prometheus metrics and every request gets a correlation id
(:mod:`services.common.observability`). Nothing connects at import time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pymongo
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts import REGISTRY
from contracts.registry import EventRegistry
from services.common.availability import DependencyHealth
from services.common.broker import make_broker
from services.common.clock import Clock, OffsetFileClock, SystemClock
from services.common.consumer import subscribe_all
from services.common.crypto import KeyWrapper, MongoDataKeyring, PiiCipher
from services.common.declaration import KEYRING_COLLECTION, Service, ServiceDeclaration
from services.common.http import BodySizeLimit, install_problem_handlers
from services.common.json_body import StrictJSON
from services.common.logging import configure_logging, get_logger
from services.common.metrics import MeasuredPublisher, ServiceMetrics
from services.common.observability import RequestObservability, metrics_router
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings
from services.common.store import CommandCounter, Document, database, make_mongo_client
from services.common.wakeup import Wakeup

__all__ = ["Runtime", "built_service", "clock_for", "create_app", "describe_clock"]

READY_PROBE_S = 2.0
"""How long ``/readyz`` waits for the store and for Kafka before it says "not ready"."""


@dataclass
class Runtime:
    """Everything a service's handlers and routes need, built once per process."""

    service: str
    settings: CommonSettings
    clock: Clock
    registry: EventRegistry
    broker: KafkaBroker
    mongo: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    keyring: MongoDataKeyring
    cipher: PiiCipher
    publisher: EventPublisher
    metrics: ServiceMetrics
    health: DependencyHealth = field(default_factory=DependencyHealth)
    wakeups: list[Wakeup] = field(default_factory=list)
    """Every background loop's :class:`Wakeup`: stopped first when the service stops."""

    def wakeup(self, max_sleep_s: float) -> Wakeup:
        """A :class:`Wakeup` on the service's clock, stopped with the service."""
        wakeup = Wakeup(self.clock, max_sleep_s)
        self.wakeups.append(wakeup)
        return wakeup

    @classmethod
    def build(cls, service: str, settings: CommonSettings, clock: Clock | None = None) -> Runtime:
        clock = clock or SystemClock()
        broker = make_broker(settings, client_id=service)
        metrics = ServiceMetrics.for_service(service, settings, REGISTRY)
        mongo = make_mongo_client(
            settings, app_name=service, listeners=[CommandCounter(metrics.store_command)]
        )
        db = database(mongo, settings)
        keyring = MongoDataKeyring(
            db[KEYRING_COLLECTION],
            KeyWrapper(settings.kek_bytes(), settings.kek_id),
            clock=clock,
            cache_ttl=settings.data_key_cache_s,
        )
        cipher = PiiCipher(keyring)
        publisher = MeasuredPublisher(
            metrics=metrics,
            broker=broker,
            settings=settings,
            registry=REGISTRY,
            cipher=cipher,
            clock=clock,
            producer=service,
        )
        return cls(
            service,
            settings,
            clock,
            REGISTRY,
            broker,
            mongo,
            db,
            keyring,
            cipher,
            publisher,
            metrics,
        )


def health_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.service}

    @router.get(
        "/readyz",
        summary="Readiness: the store answers a query, Kafka answers, no consumer is stalled",
    )
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, Any] = {}
        budget = min(READY_PROBE_S, runtime.settings.store_timeout_s)
        try:
            # A real query on the service's database, not a ping: a wedged store can still
            # answer ping (seen with FerretDB) while every read of data hangs.
            with pymongo.timeout(budget):
                await runtime.db[KEYRING_COLLECTION].find_one({"_id": "readyz-probe"})
            checks["mongo"] = "ok"
        except Exception as error:
            checks["mongo"] = f"error: {type(error).__name__}: {str(error)[:200]}"
        checks["kafka"] = (
            "ok" if await runtime.broker.ping(timeout=READY_PROBE_S) else "error: no answer"
        )
        stalled = runtime.health.report()
        checks["consumers"] = stalled or "ok"
        started = bool(getattr(request.app.state, "started", False))
        ready = started and all(value == "ok" for value in checks.values())
        body = {
            "status": "ready" if ready else "not ready",
            "service": runtime.service,
            **checks,
            "test_clock": describe_clock(runtime.clock),
        }
        headers = {} if ready else {"Retry-After": str(runtime.settings.retry_after_s)}
        return JSONResponse(body, status_code=200 if ready else 503, headers=headers)

    return router


CANCELLED_TASK_GRACE_S = 5.0
"""How long a cancelled background task may take to unwind before shutdown goes on without it."""


async def stop_background(runtime: Runtime, tasks: list[asyncio.Task[None]]) -> None:
    """Stop the background loops: their rounds in progress finish (within
    ``shutdown_grace_s``), then the stragglers are cancelled. Never waits without a deadline:
    a task that still has not ended is logged and left behind."""
    log = get_logger(runtime.service)
    for wakeup in runtime.wakeups:
        wakeup.stop()
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=runtime.settings.shutdown_grace_s)
    for task in late:
        task.cancel()
    if late:
        _, stuck = await asyncio.wait(late, timeout=CANCELLED_TASK_GRACE_S)
        log.warning(
            "background work overran the shutdown grace period and was cancelled",
            tasks=sorted(task.get_name() for task in late),
            not_ended=sorted(task.get_name() for task in stuck),
        )
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("background task failed", task=task.get_name(), exc_info=task.exception())


async def stop_kafka(runtime: Runtime) -> None:
    """Stop the subscribers (records being handled get ``shutdown_grace_s`` to finish, see
    :func:`~services.common.broker.make_broker`) and the producer, within twice that."""
    try:
        async with asyncio.timeout(2 * runtime.settings.shutdown_grace_s):
            await runtime.broker.stop()
    except TimeoutError:
        get_logger(runtime.service).error(
            "Kafka clients did not close in time; stopping without them",
            within_s=2 * runtime.settings.shutdown_grace_s,
        )


def describe_clock(clock: Clock) -> dict[str, Any] | bool:
    """``False``, or what ``/readyz`` says of the TEST ONLY offset-file clock in use: its file
    and the offset now in force (or why the file is refused). Not a readiness check: a test
    stack with it is ready, but a production one must never show it."""
    if not isinstance(clock, OffsetFileClock):
        return False
    state: dict[str, Any] = {"offset_file": str(clock.path)}
    try:
        state["offset_s"] = clock.offset().total_seconds()
    except (OSError, ValueError) as error:
        state["error"] = str(error)[:300]
    return state


def clock_for(settings: CommonSettings) -> Clock:
    """The system clock, or the test-only :class:`OffsetFileClock` when the settings enable it
    (settings validation already refused an offset file without ``enable_test_clock``)."""
    if settings.enable_test_clock and settings.test_clock_offset_file is not None:
        return OffsetFileClock(settings.test_clock_offset_file)
    return SystemClock()


def built_service(app: FastAPI) -> Service[Any]:
    """The :class:`Service` an app of :func:`create_app` runs (tests reach its parts)."""
    service: Service[Any] = app.state.service
    return service


def create_app(
    declaration: ServiceDeclaration[Any, Any],
    settings: CommonSettings,
    *,
    clock: Clock | None = None,
) -> FastAPI:
    """The service's ASGI app; clients connect in its lifespan, not here."""
    name = declaration.name
    configure_logging(name, settings.log_level, settings.log_format)
    clock = clock or clock_for(settings)
    runtime = Runtime.build(name, settings, clock)
    log = get_logger(name)
    if isinstance(clock, OffsetFileClock):
        log.warning(
            "TEST CLOCK IN USE: time is the system time plus the offset in a file; "
            "never run this configuration in production",
            offset_file=str(clock.path),
        )
        runtime.metrics.test_clock.labels(name).set(1)
    service = declaration.build(runtime, settings)
    subscribe_all(
        runtime,
        settings,
        service=name,
        subscriptions=declaration.subscriptions,
        handlers=service.handlers,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.db.command("ping")
        await runtime.keyring.ensure_indexes()
        for step in service.startup:
            await step()
        await runtime.broker.start()
        tasks = [
            asyncio.create_task(loop(), name=task_name)
            for task_name, loop in service.background.items()
        ]
        app.state.started = True
        log.info("service ready", kafka=settings.kafka_bootstrap, mongo_db=settings.mongo_db)
        try:
            yield
        finally:
            app.state.started = False
            await stop_background(runtime, tasks)
            await stop_kafka(runtime)
            await runtime.mongo.close()
            log.info("service stopped")

    app = FastAPI(title=declaration.title, version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.service = service
    app.state.tenant_gate = service.tenant_gate
    app.state.started = False
    install_problem_handlers(app, retry_after_s=settings.retry_after_s)
    app.add_middleware(StrictJSON)  # inside the size limit: buffers at most max_body_bytes
    app.add_middleware(BodySizeLimit, max_bytes=declaration.max_body_bytes(settings))
    app.add_middleware(RequestObservability, metrics=runtime.metrics)  # outermost: sees 413s
    app.include_router(health_router(runtime))
    app.include_router(metrics_router(runtime.metrics))
    for router in service.routers:
        app.include_router(router)
    return app
