"""Each tenant's CRM connections, which are also its recipients of personal data (R27).

Declared by the operator in ``<config dir>/tenants/<tenant>/crm.yaml``; secrets come from an
environment variable or a file named there, never from the file itself::

    connections:
      - id: hubspot-eu
        recipient:
          name: HubSpot (the tenant's CRM)
          location: EU (Frankfurt data centre)
          data_categories: [contact, score, interactions]
        field_mapping: {score: leadtrail_score, interaction_summary: leadtrail_summary}
        adapter: {kind: hubspot, secret_env: ACME_HUBSPOT_TOKEN, gdpr_delete: true}
    pull:                       # optional: also publish crm.lead_upserted/deleted on crm-sync
      enabled: true
      field_mapping: {email: Email, score: LeadScore}

The file is re-read when it changes. See docs/crm-adapters.md for every adapter option.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.common.tenants import tenant_config_dir
from services.crm_sync.adapters.config import ConnectionConfig

__all__ = ["CrmConnection", "CrmFile", "PullFeed", "Recipient", "TenantConnections"]

CRM_FILE = "crm.yaml"


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    location: Annotated[str, Field(min_length=1, max_length=200)]
    data_categories: list[str] = Field(default_factory=lambda: ["contact", "score"])
    basis: Annotated[str, Field(max_length=200)] = "processor acting for the tenant"


class CrmConnection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    recipient: Recipient
    field_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Leadtrail field -> the CRM's field name, for custom properties",
    )
    adapter: ConnectionConfig

    @model_validator(mode="before")
    @classmethod
    def _adapter_takes_the_id(cls, values: Any) -> Any:
        if isinstance(values, dict) and isinstance(values.get("adapter"), dict):
            values = {**values, "adapter": {"id": values.get("id"), **values["adapter"]}}
        return values

    def fingerprint(self) -> str:
        """Changes when anything a data subject would care about changes (not secrets)."""
        public = self.model_dump(mode="json", exclude={"adapter": {"secret_env", "secret_file"}})
        return hashlib.sha256(repr(sorted(public.items())).encode()).hexdigest()


class PullFeed(BaseModel):
    """The ``crm-sync`` topic feed for CRM-side consumers (pull mode)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    field_mapping: dict[str, str] = Field(default_factory=dict)


class CrmFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    connections: list[CrmConnection] = Field(default_factory=list)
    pull: PullFeed = Field(default_factory=PullFeed)

    def connection(self, connection_id: str) -> CrmConnection | None:
        return next((c for c in self.connections if c.id == connection_id), None)

    @model_validator(mode="after")
    def _unique(self) -> CrmFile:
        ids = [c.id for c in self.connections]
        if len(ids) != len(set(ids)):
            raise ValueError("connection ids must be unique")
        return self


class TenantConnections:
    def __init__(self, config_dir: Path) -> None:
        self._config_dir = config_dir
        self._cache: dict[str, tuple[float, CrmFile]] = {}

    def path(self, tenant_id: str) -> Path:
        return tenant_config_dir(self._config_dir, tenant_id) / CRM_FILE

    def for_tenant(self, tenant_id: str) -> CrmFile:
        path = self.path(tenant_id)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return CrmFile()
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            loaded = CrmFile.model_validate(yaml.safe_load(path.read_text()) or {})
        except (yaml.YAMLError, ValidationError) as error:
            raise ValueError(f"{path}: {error}") from None
        self._cache[tenant_id] = (mtime, loaded)
        return loaded

    def tenants(self) -> list[str]:
        root = self._config_dir / "tenants"
        if not root.is_dir():
            return []
        return sorted(p.parent.name for p in root.glob(f"*/{CRM_FILE}"))
