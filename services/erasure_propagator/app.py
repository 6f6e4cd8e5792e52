"""Composition of the erasure-propagator service: its parts, built once on a runtime."""

from __future__ import annotations

from services.common.declaration import Service
from services.common.runtime import Runtime
from services.common.wakeup import run_when_due
from services.erasure_propagator.handlers import ErasureHandlers
from services.erasure_propagator.settings import ErasureSettings
from services.erasure_propagator.store import ErasureStore

__all__ = ["build"]


def build(runtime: Runtime, settings: ErasureSettings) -> Service[ErasureHandlers]:
    handlers = ErasureHandlers(runtime, ErasureStore(runtime.db), settings)

    async def watch_deadlines() -> None:
        """Runs at the earliest open erasure's deadline (or the cap), not on a timer."""
        await run_when_due("deadline check", handlers.run_due, handlers.wakeup)

    return Service(
        handlers=handlers,
        startup=[handlers.store.ensure_indexes],
        background={"watch_deadlines": watch_deadlines},
    )
