"""Composition of the consent-ledger service."""

from __future__ import annotations

from fastapi import APIRouter

from contracts.topics import CONSENT_EVENTS, ERASURE_EVENTS, LEAD_EVENTS, PRIVACY_EVENTS
from services.common.consumer import subscribe_events
from services.common.http import RateLimiter
from services.common.purposes import TenantPurposes
from services.common.runtime import Runtime, ServiceSpec
from services.common.tenants import TenantDirectory
from services.consent_ledger.api import ConsentApi, build_router
from services.consent_ledger.handlers import ConsentHandlers
from services.consent_ledger.projection import ConsentProjection
from services.consent_ledger.settings import ConsentSettings

__all__ = ["SERVICE_NAME", "SETTINGS_CLASS", "build_spec"]

SERVICE_NAME = "consent-ledger"
SETTINGS_CLASS = ConsentSettings


def build_spec(settings: ConsentSettings) -> ServiceSpec:
    parts: dict[str, tuple[ConsentApi, ConsentHandlers]] = {}

    def wired(runtime: Runtime) -> tuple[ConsentApi, ConsentHandlers]:
        if "parts" not in parts:
            projection = ConsentProjection(runtime.db)
            purposes = TenantPurposes(settings.config_dir)
            parts["parts"] = (
                ConsentApi(
                    runtime=runtime,
                    settings=settings,
                    tenants=TenantDirectory(settings.config_dir),
                    limiter=RateLimiter(200.0, 400),
                    projection=projection,
                    purposes=purposes,
                ),
                ConsentHandlers(runtime, projection, purposes),
            )
        return parts["parts"]

    def register(runtime: Runtime) -> None:
        _, handlers = wired(runtime)
        for group, topic, handler, types in (
            ("consent-ledger.leads", LEAD_EVENTS, handlers.on_lead_event, ["lead.captured"]),
            (
                "consent-ledger.privacy",
                PRIVACY_EVENTS,
                handlers.on_privacy_event,
                ["privacy.request.received", "privacy.request.verified"],
            ),
            (
                "consent-ledger.erasure",
                ERASURE_EVENTS,
                handlers.on_erasure_event,
                ["erasure.requested"],
            ),
            (
                "consent-ledger.ledger",
                CONSENT_EVENTS,
                handlers.on_consent_event,
                runtime.registry.types_on_topic(CONSENT_EVENTS.name),
            ),
        ):
            subscribe_events(
                runtime.broker,
                settings,
                service=SERVICE_NAME,
                group_id=group,
                topics=[topic.name],
                handler=handler,
                clock=runtime.clock,
                metrics=runtime.metrics,
                event_types=types,
            )

    async def on_startup(runtime: Runtime) -> None:
        await wired(runtime)[0].projection.ensure_indexes()

    def router(runtime: Runtime) -> APIRouter:
        return build_router(wired(runtime)[0])

    return ServiceSpec(
        name=SERVICE_NAME,
        title="Leadtrail consent-ledger API",
        register=register,
        on_startup=on_startup,
        routers=[router],
    )
