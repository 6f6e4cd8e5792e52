"""crm-sync's handlers.

Until CRM connections are configured for a tenant, crm-sync holds no copy of anyone's data,
and its erasure and rectification receipts say exactly that; erasure-propagator waits for them.
"""

from __future__ import annotations

from contracts import EventEnvelope
from services.common.receipts import send_erasure_receipt, send_rectification_receipt
from services.common.runtime import Runtime

__all__ = ["CrmSyncHandlers"]

SERVICE = "crm-sync"


class CrmSyncHandlers:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_event(self, envelope: EventEnvelope) -> None:
        if envelope.type == "erasure.requested":
            self.runtime.keyring.forget_cached(envelope.tenant_id, envelope.subject_id)
            await send_erasure_receipt(
                self.runtime.publisher,
                envelope,
                SERVICE,
                ["no CRM connection holds records of the subject: nothing to delete"],
            )
        elif envelope.type == "lead.rectified":
            await send_rectification_receipt(
                self.runtime.publisher,
                envelope,
                SERVICE,
                ["no CRM connection holds records of the subject: nothing to update"],
            )
