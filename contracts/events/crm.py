"""crm-sync's events: outcomes on ``crm-events``, and the pull feed on ``crm-sync`` (R7, R27)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "CrmLeadDeletedV1",
    "CrmLeadSyncedV1",
    "CrmLeadUpsertedV1",
    "CrmRecipientChangedV1",
    "CrmRecordDeletedV1",
    "CrmRecordDeletedV2",
    "CrmSyncFailedV1",
    "MappedFieldsV1",
]

Id = Annotated[str, Field(min_length=1, max_length=200)]
Kind = Literal["hubspot", "salesforce", "pipedrive", "webhook"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrmLeadSyncedV1(_Strict):
    """The lead is in the tenant's CRM; ``record_id`` is the CRM's own id (R7)."""

    lead_id: Id
    connection_id: Id
    kind: Kind
    record_id: Id
    created: bool = Field(description="true when this push created the record")
    score: int | None = None


class CrmSyncFailedV1(_Strict):
    """One failed CRM call. Transient failures are retried; the others are dead-lettered."""

    lead_id: Id
    connection_id: Id
    operation: Literal["upsert", "delete"]
    attempt: int = Field(ge=1)
    status: int | None
    error: Annotated[str, Field(max_length=2000)]
    transient: bool
    next_attempt_at: AwareDatetime | None = None
    dead_lettered: bool = False


class CrmRecordDeletedV1(_Strict):
    """The CRM confirmed the deletion of the lead's record (R25)."""

    lead_id: Id
    connection_id: Id
    record_id: Id
    erasure_id: Id | None = None
    gdpr_delete: bool = False


class CrmRecordDeletedV2(_Strict):
    """The CRM confirmed the deletion of the lead's record, and why: an erasure (R25), or no
    lawful basis left for the ``crm_sync`` purpose (consent withdrawn, or an objection; R11,
    R12). After ``no_basis`` a new consent pushes the lead again, as a new record."""

    lead_id: Id
    connection_id: Id
    record_id: Id
    reason: Literal["erasure", "no_basis"]
    erasure_id: Id | None = Field(default=None, description="reason erasure: which erasure")
    gdpr_delete: bool = False


class CrmRecipientChangedV1(_Strict):
    """A recipient of personal data (a CRM connection) was added, changed or removed (R27)."""

    connection_id: Id
    change: Literal["added", "changed", "removed"]
    kind: Kind | None
    name: Annotated[str, Field(max_length=200)] | None
    location: Annotated[str, Field(max_length=200)] | None
    data_categories: list[str] = Field(default_factory=list)


class CrmLeadUpsertedV1(_Strict):
    """Pull feed: the lead as the tenant's CRM should hold it, fields already mapped to the
    tenant's CRM names. The values are personal data and travel encrypted in ``pii``."""

    lead_id: Id
    score: int | None
    qualified: bool
    fields: list[str] = Field(description="names of the mapped fields present in pii")


class MappedFieldsV1(_Strict):
    values: dict[str, str]


class CrmLeadDeletedV1(_Strict):
    """Pull feed: delete the lead (erasure); CRM-side consumers must remove their copy."""

    lead_id: Id
    erasure_id: Id | None = None
