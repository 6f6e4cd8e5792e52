"""Composition of the consent-ledger service: its parts, built once on a runtime."""

from __future__ import annotations

from services.common.declaration import Service
from services.common.http import PublicRateLimits, RateLimiter, TenantGate
from services.common.purposes import TenantPurposes
from services.common.runtime import Runtime
from services.common.tenants import TenantDirectory
from services.consent_ledger.api import ConsentApi, build_router
from services.consent_ledger.handlers import ConsentHandlers
from services.consent_ledger.projection import ConsentProjection
from services.consent_ledger.settings import ConsentSettings

__all__ = ["build"]


def build(runtime: Runtime, settings: ConsentSettings) -> Service[ConsentHandlers]:
    projection = ConsentProjection(runtime.db)
    purposes = TenantPurposes(settings.config_dir)
    api = ConsentApi(
        runtime=runtime,
        settings=settings,
        public=PublicRateLimits.from_settings(settings),
        projection=projection,
        purposes=purposes,
    )
    return Service(
        handlers=ConsentHandlers(runtime, projection, purposes),
        routers=[build_router(api)],
        tenant_gate=TenantGate(TenantDirectory(settings.config_dir), RateLimiter(200.0, 400)),
        startup=[projection.ensure_indexes],
    )
