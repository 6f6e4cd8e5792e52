"""Composition of the retention-scheduler service."""

from __future__ import annotations

from contracts.topics import (
    CONSENT_EVENTS,
    ERASURE_EVENTS,
    LEAD_EVENTS,
    PRIVACY_EVENTS,
    RETENTION_EVENTS,
)
from services.common.consumer import Subscription, subscribe_all
from services.common.logging import get_logger
from services.common.runtime import Runtime, ServiceSpec
from services.common.wakeup import run_when_due
from services.retention_scheduler.domain import CONSENT_CHANGES
from services.retention_scheduler.handlers import RetentionHandlers
from services.retention_scheduler.schedule import RetentionStore, Scheduler
from services.retention_scheduler.settings import RetentionSettings

__all__ = ["SERVICE_NAME", "SETTINGS_CLASS", "SUBSCRIPTIONS", "build_spec"]

SERVICE_NAME = "retention-scheduler"
SETTINGS_CLASS = RetentionSettings
log = get_logger(__name__)

SUBSCRIPTIONS: tuple[Subscription[RetentionHandlers], ...] = (
    Subscription(
        "retention-scheduler",
        (LEAD_EVENTS, CONSENT_EVENTS, RETENTION_EVENTS, ERASURE_EVENTS, PRIVACY_EVENTS),
        handle_batch=RetentionHandlers.on_events,
        event_types=frozenset(
            {
                "lead.captured",
                "lead.interaction_recorded",
                "lead.score_reviewed",
                "lead.rectified",
                *CONSENT_CHANGES,
                "retention.policy_set",
                "retention.hold_placed",
                "retention.hold_released",
                "retention.expired",
                "erasure.requested",
                "privacy.request.verified",
            }
        ),
    ),
)


def build_spec(settings: RetentionSettings) -> ServiceSpec:
    def register(runtime: Runtime) -> None:
        wakeup = runtime.wakeup(settings.tick_interval_s)
        store = RetentionStore(runtime.db, on_scheduled=wakeup.notify)
        runtime.state.update(retention_store=store, retention_wakeup=wakeup)
        runtime.state["scheduler"] = Scheduler(
            store, runtime.publisher, runtime.clock, settings.tick_batch_size
        )
        subscribe_all(
            runtime,
            settings,
            service=SERVICE_NAME,
            subscriptions=SUBSCRIPTIONS,
            handlers=RetentionHandlers(runtime.registry, runtime.publisher, store),
        )

    async def on_startup(runtime: Runtime) -> None:
        store: RetentionStore = runtime.state["retention_store"]
        await store.ensure_indexes()

    async def tick_forever(runtime: Runtime) -> None:
        """Runs when the earliest schedule is due or an event schedules an earlier one."""
        scheduler: Scheduler = runtime.state["scheduler"]
        await run_when_due("retention tick", scheduler.run_due, runtime.state["retention_wakeup"])

    return ServiceSpec(
        name=SERVICE_NAME,
        register=register,
        on_startup=on_startup,
        background=[tick_forever],
    )
