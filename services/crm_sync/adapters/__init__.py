"""Outbound CRM adapters for crm-sync: HubSpot, Salesforce, Pipedrive and a signed webhook.

``build_adapter(config)`` gives the adapter for a :class:`ConnectionConfig`; each one has
``upsert(contact, record_id) -> record_id``, ``delete(contact, record_id)`` and ``aclose()``,
and raises :class:`CrmError` (``transient`` or not) for every failure. See docs/crm-adapters.md.
"""

from services.crm_sync.adapters.base import (
    ConnectionConfig,
    CrmAdapter,
    CrmContact,
    CrmError,
    build_adapter,
    parse_retry_after,
)
from services.crm_sync.adapters.webhook import (
    WebhookVerificationError,
    sign_webhook,
    verify_webhook,
)

__all__ = [
    "ConnectionConfig",
    "CrmAdapter",
    "CrmContact",
    "CrmError",
    "WebhookVerificationError",
    "build_adapter",
    "parse_retry_after",
    "sign_webhook",
    "verify_webhook",
]
