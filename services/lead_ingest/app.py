"""Composition of the lead-ingest service: HTTP API, projections, scoring."""

from __future__ import annotations

from fastapi import APIRouter

from contracts.topics import CONSENT_EVENTS, ERASURE_EVENTS, LEAD_EVENTS, PRIVACY_EVENTS
from services.common.consumer import Subscription, subscribe_all
from services.common.http import PublicRateLimits, RateLimiter
from services.common.purposes import TenantPurposes
from services.common.runtime import Runtime, ServiceSpec
from services.common.tenants import TenantDirectory
from services.lead_ingest.api import IngestApi, build_router
from services.lead_ingest.export_assembly import ExportAssembler
from services.lead_ingest.export_download import build_export_router
from services.lead_ingest.handlers import LeadIngestHandlers
from services.lead_ingest.idempotency import IdempotencyStore
from services.lead_ingest.linking import BlindIndex, SubjectLinker
from services.lead_ingest.projection import LeadProjection
from services.lead_ingest.settings import IngestSettings
from services.lead_ingest.tenant_rules import TenantRules

__all__ = ["SERVICE_NAME", "SETTINGS_CLASS", "SUBSCRIPTIONS", "build_spec"]

SERVICE_NAME = "lead-ingest"
SETTINGS_CLASS = IngestSettings
SUBSCRIPTIONS: tuple[Subscription[LeadIngestHandlers], ...] = tuple(
    Subscription(group_id, (topic,), handle_batch=LeadIngestHandlers.on_events)
    for group_id, topic in (
        ("lead-ingest.leads", LEAD_EVENTS),
        ("lead-ingest.subjects", CONSENT_EVENTS),
        ("lead-ingest.privacy", PRIVACY_EVENTS),
        ("lead-ingest.erasure", ERASURE_EVENTS),
    )
)


def build_spec(settings: IngestSettings) -> ServiceSpec:
    parts: dict[str, IngestApi] = {}

    def api_for(runtime: Runtime) -> IngestApi:
        if "api" not in parts:
            projection = LeadProjection(runtime.db)
            linker = SubjectLinker(
                runtime.db["subject_index"], BlindIndex(settings.blind_index_bytes())
            )
            parts["api"] = IngestApi(
                runtime=runtime,
                settings=settings,
                tenants=TenantDirectory(settings.config_dir),
                limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
                public=PublicRateLimits.from_settings(settings),
                linker=linker,
                idempotency=IdempotencyStore(
                    runtime.db["idempotency"],
                    settings.idempotency_takeover_s,
                    settings.blind_index_bytes(),
                ),
                projection=projection,
                handlers=LeadIngestHandlers(
                    runtime,
                    projection,
                    TenantRules(settings.config_dir),
                    TenantPurposes(settings.config_dir),
                    linker,
                    exports=ExportAssembler(runtime, projection, settings.export_parts),
                ),
            )
        return parts["api"]

    def register(runtime: Runtime) -> None:
        subscribe_all(
            runtime,
            settings,
            service=SERVICE_NAME,
            subscriptions=SUBSCRIPTIONS,
            handlers=api_for(runtime).handlers,
        )

    async def on_startup(runtime: Runtime) -> None:
        await api_for(runtime).projection.ensure_indexes()
        await api_for(runtime).linker.ensure_indexes()

    def router(runtime: Runtime) -> APIRouter:
        return build_router(api_for(runtime))

    def export_router(runtime: Runtime) -> APIRouter:
        return build_export_router(api_for(runtime))

    return ServiceSpec(
        name=SERVICE_NAME,
        title="Leadtrail lead-ingest API",
        register=register,
        on_startup=on_startup,
        routers=[router, export_router],
        max_body_bytes=settings.max_body_bytes,
    )
