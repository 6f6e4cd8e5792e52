"""What operators and DPOs did beside the domain events, on ``operator-events``.

A legal hold or a retention policy is a domain event of its own (``retention-events``, with
``placed_by`` / ``set_by``); these record the other actions of the console, each naming the
account (``console:<account>``): a dead letter sent again, a verification of the log started.
Tenant-wide, under the subject id ``_tenant``; an action over every tenant (an operator's
verification) names the tenant ``_all``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ALL_TENANTS", "DeadLetterRedrivenV1", "LogVerificationStartedV1"]

ALL_TENANTS = "_all"

Actor = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeadLetterRedrivenV1(_Strict):
    """A dead letter's original record was sent to its topic again (``leadtrail dlq redrive``
    or the console)."""

    letter_id: Annotated[str, Field(min_length=1, max_length=64)]
    service: Annotated[str, Field(min_length=1, max_length=64)]
    """The service that gave up on the record (only it handles it again)."""
    source_topic: Annotated[str, Field(min_length=1, max_length=249)]
    event_id: str | None = None
    event_type: str | None = None
    redriven_by: Actor


class LogVerificationStartedV1(_Strict):
    """A verification of the event log's integrity seals was started (``leadtrail verify``
    run from the console)."""

    started_by: Actor
    scope: Literal["all", "tenant"]
    """``all``: every tenant's chains (an operator); ``tenant``: the report the account sees
    is its tenant's."""
