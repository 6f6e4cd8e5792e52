"""Composition of the erasure-propagator service."""

from __future__ import annotations

from contracts.topics import CONSENT_EVENTS, ERASURE_EVENTS, PRIVACY_EVENTS, RETENTION_EVENTS
from services.common.consumer import Subscription, subscribe_all
from services.common.logging import get_logger
from services.common.runtime import Runtime, ServiceSpec
from services.common.wakeup import run_when_due
from services.erasure_propagator.handlers import ErasureHandlers
from services.erasure_propagator.settings import ErasureSettings
from services.erasure_propagator.store import ErasureStore

__all__ = ["SERVICE_NAME", "SETTINGS_CLASS", "SUBSCRIPTIONS", "build_spec"]

SERVICE_NAME = "erasure-propagator"
SETTINGS_CLASS = ErasureSettings
log = get_logger(__name__)

SUBSCRIPTIONS: tuple[Subscription[ErasureHandlers], ...] = (
    Subscription(
        "erasure-propagator",
        (PRIVACY_EVENTS, RETENTION_EVENTS, CONSENT_EVENTS, ERASURE_EVENTS),
        handle_batch=ErasureHandlers.on_events,
        event_types=frozenset(
            {
                "privacy.request.received",
                "privacy.request.verified",
                "retention.expired",
                "retention.hold_placed",
                "retention.hold_released",
                "consent.no_basis_remaining",
                "erasure.receipt",
                "rectification.receipt",
            }
        ),
    ),
)


def build_spec(settings: ErasureSettings) -> ServiceSpec:
    def register(runtime: Runtime) -> None:
        handlers = ErasureHandlers(runtime, ErasureStore(runtime.db), settings)
        runtime.state["handlers"] = handlers
        subscribe_all(
            runtime,
            settings,
            service=SERVICE_NAME,
            subscriptions=SUBSCRIPTIONS,
            handlers=handlers,
        )

    async def on_startup(runtime: Runtime) -> None:
        handlers: ErasureHandlers = runtime.state["handlers"]
        await handlers.store.ensure_indexes()

    async def watch_deadlines(runtime: Runtime) -> None:
        """Runs at the earliest open erasure's deadline (or the cap), not on a timer."""
        handlers: ErasureHandlers = runtime.state["handlers"]
        await run_when_due("deadline check", handlers.run_due, handlers.wakeup)

    return ServiceSpec(
        name=SERVICE_NAME,
        register=register,
        on_startup=on_startup,
        background=[watch_deadlines],
    )
