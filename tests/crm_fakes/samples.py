"""Sample contacts for tests of crm-sync and its adapters."""

from __future__ import annotations

import dataclasses
from typing import Any

from services.crm_sync.adapters.base import CrmContact

__all__ = ["sample_contact"]

_SAMPLE = CrmContact(
    lead_id="01JF8Z6V2M9Q4T7X1C3B5N8K0D",
    subject_id="subj_7f3a9c2e",
    tenant_id="acme",
    email="jane.doe@example.com",
    phone="+4915112345678",
    first_name="Jane",
    last_name="Doe",
    company="Example GmbH",
    job_title="Head of Purchasing",
    score=82,
    qualified=True,
    interaction_summary="whatsapp 2026-11-02: budget=15000; timeline=this quarter",
    source="web_form",
    extra={},
)


def sample_contact(**changes: Any) -> CrmContact:
    """A fully filled contact; ``changes`` replace fields (``phone=None``, ``extra={...}``)."""
    return dataclasses.replace(_SAMPLE, **changes)
