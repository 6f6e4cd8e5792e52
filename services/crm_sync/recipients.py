"""The registry of recipients (R27): every CRM connection is a recipient of personal data.

``GET /v1/recipients`` lists a tenant's recipients; every change to one (added, changed,
removed in ``crm.yaml``) becomes a ``crm.recipient_changed`` event, so tenants can be told.
"""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from contracts.events.crm import CrmRecipientChangedV1
from contracts.events.retention import TENANT_SUBJECT
from services.common.http import Caller, problem_responses
from services.common.publisher import derived_event_id
from services.common.runtime import Runtime
from services.crm_sync.connections import CrmConnection, TenantConnections
from services.crm_sync.store import CrmStore

__all__ = ["RecipientView", "announce_changes", "build_router"]


class RecipientView(BaseModel):
    connection_id: str
    kind: str
    name: str
    location: str
    data_categories: list[str]
    basis: str


async def announce_changes(
    runtime: Runtime, store: CrmStore, connections: TenantConnections
) -> int:
    """Publish ``crm.recipient_changed`` for every difference from what was last announced."""
    announced = 0
    known = {d["_id"]: d async for d in store.recipients.find({})}
    seen: set[str] = set()
    for tenant_id in connections.tenants():
        for connection in connections.for_tenant(tenant_id).connections:
            key = f"{tenant_id}:{connection.id}"
            seen.add(key)
            fingerprint = connection.fingerprint()
            previous = known.get(key)
            if previous is not None and previous["fingerprint"] == fingerprint:
                continue
            change: Literal["added", "changed"] = "added" if previous is None else "changed"
            await _publish(
                runtime,
                tenant_id=tenant_id,
                connection_id=connection.id,
                change=change,
                fingerprint=fingerprint,
                connection=connection,
            )
            await store.recipients.update_one(
                {"_id": key},
                {"$set": {"tenant_id": tenant_id, "fingerprint": fingerprint}},
                upsert=True,
            )
            announced += 1
    for key, previous in known.items():
        if key not in seen:
            tenant_id, connection_id = key.split(":", 1)
            await _publish(
                runtime,
                tenant_id=tenant_id,
                connection_id=connection_id,
                change="removed",
                fingerprint=previous["fingerprint"],
                connection=None,
            )
            await store.recipients.delete_one({"_id": key})
            announced += 1
    return announced


async def _publish(
    runtime: Runtime,
    *,
    tenant_id: str,
    connection_id: str,
    change: Literal["added", "changed", "removed"],
    fingerprint: str,
    connection: CrmConnection | None,
) -> None:
    seed = f"{tenant_id}:{connection_id}:{change}:{fingerprint}"
    await runtime.publisher.publish(
        CrmRecipientChangedV1(
            connection_id=connection_id,
            change=change,
            kind=connection.adapter.kind if connection else None,
            name=connection.recipient.name if connection else None,
            location=connection.recipient.location if connection else None,
            data_categories=list(connection.recipient.data_categories) if connection else [],
        ),
        tenant_id=tenant_id,
        subject_id=TENANT_SUBJECT,
        correlation_id=str(uuid.uuid4()),
        event_id=derived_event_id(seed, "recipient_changed"),
    )


def build_router(connections: TenantConnections) -> APIRouter:
    router = APIRouter(
        prefix="/v1",
        responses=problem_responses(
            {401: "missing or invalid API key", 429: "rate limited; see Retry-After"}
        ),
    )

    @router.get(
        "/recipients",
        response_model=list[RecipientView],
        summary="Who receives the tenant's leads' personal data: which data, where (R27)",
    )
    async def recipients(who: Caller) -> list[RecipientView]:
        return [
            RecipientView(
                connection_id=c.id,
                kind=c.adapter.kind,
                name=c.recipient.name,
                location=c.recipient.location,
                data_categories=list(c.recipient.data_categories),
                basis=c.recipient.basis,
            )
            for c in connections.for_tenant(who.id).connections
        ]

    return router
