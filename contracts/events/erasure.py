"""erasure-propagator's events on ``erasure-events`` and ``lead-events`` (R20, R24, R25)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

__all__ = [
    "ErasureCompletedV1",
    "ErasureDeferredV1",
    "ErasureOverdueV1",
    "ErasureReceiptV1",
    "ErasureRequestedV1",
    "ErasureTrigger",
    "LeadRectifiedV1",
    "Receipt",
    "RectificationCompletedV1",
    "RectificationReceiptV1",
    "RectifiedContactV1",
]

Id = Annotated[str, Field(min_length=1, max_length=64)]
Service = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErasureTrigger(_Strict):
    kind: Literal["privacy_request", "retention", "no_basis_remaining"]
    event_id: Id
    request_id: Id | None = None
    category: str | None = None


class ErasureRequestedV1(_Strict):
    """The subject's data keys are destroyed; every service must now anonymise its read models
    and answer with an ``erasure.receipt``."""

    erasure_id: Id
    trigger: ErasureTrigger
    deadline: AwareDatetime
    expected_receipts: list[Service]


class ErasureDeferredV1(_Strict):
    """An erasure met a legal hold (R18); it runs when the holds are released."""

    erasure_id: Id
    trigger: ErasureTrigger
    hold_ids: list[Id]


class ErasureReceiptV1(_Strict):
    """One service's confirmation: what it did to erase the subject, and when."""

    erasure_id: Id
    service: Service
    actions: Annotated[list[Annotated[str, Field(max_length=300)]], Field(max_length=50)]


class Receipt(_Strict):
    service: Service
    actions: list[str]
    at: AwareDatetime
    event_id: Id


class ErasureCompletedV1(_Strict):
    """All expected receipts are in (R25: the subject can be told, with the recipients')."""

    erasure_id: Id
    trigger: ErasureTrigger
    requested_at: AwareDatetime
    receipts: list[Receipt]


class ErasureOverdueV1(_Strict):
    """An erasure was not complete by its deadline."""

    erasure_id: Id
    deadline: AwareDatetime
    missing_receipts: list[Service]


class LeadRectifiedV1(_Strict):
    """Corrected personal data of the subject (R24); the values are in ``pii``."""

    rectification_id: Id
    request_id: Id
    fields: list[Literal["email", "phone", "first_name", "last_name", "company", "job_title"]]
    expected_receipts: list[Service]


class RectifiedContactV1(_Strict):
    email: EmailStr | None = None
    phone: Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = None
    first_name: Annotated[str, Field(max_length=200)] | None = None
    last_name: Annotated[str, Field(max_length=200)] | None = None
    company: Annotated[str, Field(max_length=200)] | None = None
    job_title: Annotated[str, Field(max_length=200)] | None = None


class RectificationReceiptV1(_Strict):
    rectification_id: Id
    service: Service
    actions: Annotated[list[Annotated[str, Field(max_length=300)]], Field(max_length=50)]


class RectificationCompletedV1(_Strict):
    rectification_id: Id
    request_id: Id
    receipts: list[Receipt]
