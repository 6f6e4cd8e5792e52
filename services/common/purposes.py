"""Each tenant's processing purposes and their legal bases (R9).

Declared by the operator in ``<config dir>/tenants/<tenant>/purposes.yaml``::

    purposes:
      crm_sync:        {basis: consent, description: Push the lead into our CRM}
      marketing_email: {basis: consent, marketing: true}
      profiling:       {basis: legitimate_interest, description: Lead scoring}
      billing:         {basis: contract}

``basis`` is one of ``consent``, ``contract``, ``legitimate_interest``, ``legal_obligation``;
``marketing: true`` marks purposes that an unsubscribe link withdraws; ``suppresses: true`` marks
purposes whose objection puts the subject on the suppression list (partner sharing). A tenant
without the file gets :data:`DEFAULT_PURPOSES`. The file is re-read when it changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.common.consent import LegalBasis
from services.common.tenants import tenant_config_dir

__all__ = ["DEFAULT_PURPOSES", "PurposeDeclaration", "PurposeFile", "TenantPurposes"]

PURPOSES_FILE = "purposes.yaml"


class PurposeDeclaration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    basis: LegalBasis
    description: Annotated[str, Field(max_length=500)] = ""
    marketing: bool = False
    suppresses: bool = False


class PurposeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    purposes: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,48}$")], PurposeDeclaration] = (
        Field(min_length=1)
    )

    def bases(self) -> dict[str, LegalBasis]:
        return {name: declaration.basis for name, declaration in self.purposes.items()}

    def marketing(self) -> list[str]:
        return sorted(name for name, d in self.purposes.items() if d.marketing)


DEFAULT_PURPOSES = PurposeFile(
    purposes={
        "crm_sync": PurposeDeclaration(
            basis="consent", description="Push the lead into the tenant's CRM"
        ),
        "marketing_email": PurposeDeclaration(
            basis="consent", description="Marketing e-mails", marketing=True
        ),
        "sms": PurposeDeclaration(basis="consent", description="Marketing SMS", marketing=True),
        "whatsapp": PurposeDeclaration(
            basis="consent", description="Instant messages", marketing=True
        ),
        "calls": PurposeDeclaration(basis="consent", description="Sales calls", marketing=True),
        "call_recording": PurposeDeclaration(basis="consent", description="Recording of calls"),
        "profiling": PurposeDeclaration(
            basis="legitimate_interest", description="Lead qualification and scoring"
        ),
        "third_party_marketing": PurposeDeclaration(
            basis="consent", description="Marketing of partners' offers", marketing=True
        ),
        "partner_sharing": PurposeDeclaration(
            basis="consent", description="Sharing the profile with partners", suppresses=True
        ),
    }
)


class TenantPurposes:
    def __init__(self, config_dir: Path) -> None:
        self._config_dir = config_dir
        self._cache: dict[str, tuple[float, PurposeFile]] = {}

    def for_tenant(self, tenant_id: str) -> PurposeFile:
        path = tenant_config_dir(self._config_dir, tenant_id) / PURPOSES_FILE
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return DEFAULT_PURPOSES
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            declared = PurposeFile.model_validate(yaml.safe_load(path.read_text()))
        except (yaml.YAMLError, ValidationError) as error:
            raise ValueError(f"{path}: {error}") from None
        self._cache[tenant_id] = (mtime, declared)
        return declared
