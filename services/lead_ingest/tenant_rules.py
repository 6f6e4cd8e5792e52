"""Loads each tenant's scoring rules from ``<config dir>/tenants/<tenant>/scoring.yaml``.

The file is re-read when it changes, so operators can tune rules without a restart; a broken
file keeps the last good rules and logs the error, and a tenant without a file is not scored.
"""

from __future__ import annotations

from pathlib import Path

from services.common.logging import get_logger
from services.common.tenants import tenant_config_dir
from services.lead_ingest.rules import ScoringRules, load_rules

__all__ = ["RULES_FILE", "TenantRules"]

RULES_FILE = "scoring.yaml"
log = get_logger(__name__)


class TenantRules:
    def __init__(self, config_dir: Path) -> None:
        self._config_dir = config_dir
        self._cache: dict[str, tuple[float, ScoringRules]] = {}

    def for_tenant(self, tenant_id: str) -> ScoringRules | None:
        path = tenant_config_dir(self._config_dir, tenant_id) / RULES_FILE
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            self._cache.pop(tenant_id, None)
            return None
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            rules = load_rules(path)
        except ValueError as error:
            log.error("scoring rules invalid; keeping the last good ones", error=str(error))
            return cached[1] if cached else None
        self._cache[tenant_id] = (mtime, rules)
        return rules
