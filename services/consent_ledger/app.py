"""Composition of the consent-ledger service."""

from __future__ import annotations

from fastapi import APIRouter

from contracts.topics import CONSENT_EVENTS, ERASURE_EVENTS, LEAD_EVENTS, PRIVACY_EVENTS
from services.common.consumer import Subscription, subscribe_all
from services.common.http import PublicRateLimits, RateLimiter
from services.common.purposes import TenantPurposes
from services.common.runtime import Runtime, ServiceSpec
from services.common.tenants import TenantDirectory
from services.consent_ledger.api import ConsentApi, build_router
from services.consent_ledger.handlers import ConsentHandlers
from services.consent_ledger.projection import ConsentProjection
from services.consent_ledger.settings import ConsentSettings

__all__ = ["SERVICE_NAME", "SETTINGS_CLASS", "SUBSCRIPTIONS", "build_spec"]

SERVICE_NAME = "consent-ledger"
SETTINGS_CLASS = ConsentSettings
SUBSCRIPTIONS: tuple[Subscription[ConsentHandlers], ...] = (
    Subscription(
        "consent-ledger.leads",
        (LEAD_EVENTS,),
        event_types=frozenset({"lead.captured"}),
        handle_batch=ConsentHandlers.on_events,
    ),
    Subscription(
        "consent-ledger.privacy",
        (PRIVACY_EVENTS,),
        event_types=frozenset({"privacy.request.received", "privacy.request.verified"}),
        handle_batch=ConsentHandlers.on_events,
    ),
    Subscription(
        "consent-ledger.erasure",
        (ERASURE_EVENTS,),
        event_types=frozenset({"erasure.requested"}),
        handle_batch=ConsentHandlers.on_events,
    ),
    Subscription(
        "consent-ledger.ledger", (CONSENT_EVENTS,), handle_batch=ConsentHandlers.on_events
    ),
)


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
                    public=PublicRateLimits.from_settings(settings),
                    projection=projection,
                    purposes=purposes,
                ),
                ConsentHandlers(runtime, projection, purposes),
            )
        return parts["parts"]

    def register(runtime: Runtime) -> None:
        subscribe_all(
            runtime,
            settings,
            service=SERVICE_NAME,
            subscriptions=SUBSCRIPTIONS,
            handlers=wired(runtime)[1],
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
