"""Composition of the retention-scheduler service: its parts, built once on a runtime."""

from __future__ import annotations

from services.common.declaration import Service
from services.common.runtime import Runtime
from services.common.wakeup import run_when_due
from services.retention_scheduler.handlers import RetentionHandlers
from services.retention_scheduler.schedule import RetentionStore, Scheduler
from services.retention_scheduler.settings import RetentionSettings

__all__ = ["build"]


def build(runtime: Runtime, settings: RetentionSettings) -> Service[RetentionHandlers]:
    wakeup = runtime.wakeup(settings.tick_interval_s)
    store = RetentionStore(runtime.db, on_scheduled=wakeup.notify)
    scheduler = Scheduler(store, runtime.publisher, runtime.clock, settings.tick_batch_size)

    async def tick_forever() -> None:
        """Runs when the earliest schedule is due or an event schedules an earlier one."""
        await run_when_due("retention tick", scheduler.run_due, wakeup)

    return Service(
        handlers=RetentionHandlers(runtime.registry, runtime.publisher, store),
        startup=[store.ensure_indexes],
        background={"tick_forever": tick_forever},
    )
