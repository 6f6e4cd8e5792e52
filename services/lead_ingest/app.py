"""Composition of the lead-ingest service (HTTP API, projections, scoring): its parts, built
once on a runtime."""

from __future__ import annotations

from services.common.declaration import Service
from services.common.http import PublicRateLimits, RateLimiter, TenantGate
from services.common.purposes import TenantPurposes
from services.common.runtime import Runtime
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

__all__ = ["build"]


def build(runtime: Runtime, settings: IngestSettings) -> Service[LeadIngestHandlers]:
    projection = LeadProjection(runtime.db)
    linker = SubjectLinker(runtime.db["subject_index"], BlindIndex(settings.blind_index_bytes()))
    handlers = LeadIngestHandlers(
        runtime,
        projection,
        TenantRules(settings.config_dir),
        TenantPurposes(settings.config_dir),
        linker,
        exports=ExportAssembler(runtime, projection, settings.export_parts),
    )
    api = IngestApi(
        runtime=runtime,
        settings=settings,
        public=PublicRateLimits.from_settings(settings),
        linker=linker,
        idempotency=IdempotencyStore(
            runtime.db["idempotency"],
            settings.idempotency_takeover_s,
            settings.blind_index_bytes(),
        ),
        projection=projection,
        handlers=handlers,
    )
    return Service(
        handlers=handlers,
        routers=[build_router(api), build_export_router(api)],
        tenant_gate=TenantGate(
            TenantDirectory(settings.config_dir),
            RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
        ),
        startup=[projection.ensure_indexes, linker.ensure_indexes],
    )
