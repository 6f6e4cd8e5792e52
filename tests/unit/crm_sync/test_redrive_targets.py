"""A redriven crm-sync dead letter calls again only the CRM connection whose call failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.common.consumer import redriven
from services.crm_sync.connections import TenantConnections
from services.crm_sync.handlers import CrmSyncHandlers


def _connection(connection_id: str) -> dict[str, Any]:
    return {
        "id": connection_id,
        "recipient": {"name": connection_id, "location": "EU", "data_categories": ["contact"]},
        "adapter": {
            "kind": "webhook",
            "url": f"https://{connection_id}.example.org/hook",
            "secret_env": "LT_UNIT_WEBHOOK_SECRET",
        },
    }


def _handlers(config_dir: Path) -> CrmSyncHandlers:
    acme = config_dir / "tenants" / "acme"
    acme.mkdir(parents=True)
    (acme / "crm.yaml").write_text(
        yaml.safe_dump({"connections": [_connection("crm-a"), _connection("crm-b")]})
    )
    # targets() reads only the connections
    return CrmSyncHandlers(None, None, TenantConnections(config_dir), None)  # type: ignore[arg-type]


def test_every_connection_for_an_event_and_the_failed_one_for_a_redrive(tmp_path: Path) -> None:
    handlers = _handlers(tmp_path)
    assert [c.id for c in handlers.targets("acme")] == ["crm-a", "crm-b"]
    redrive = {"redriven_from": "dl-1", "redrive_service": "crm-sync", "connection_id": "crm-b"}
    with redriven(redrive):
        assert [c.id for c in handlers.targets("acme")] == ["crm-b"]
    assert [c.id for c in handlers.targets("acme")] == ["crm-a", "crm-b"]


def test_a_redrive_without_a_connection_is_for_every_connection(tmp_path: Path) -> None:
    """A crm-sync consumer's own dead letter (its handler failed) names no connection."""
    handlers = _handlers(tmp_path)
    with redriven({"redriven_from": "dl-1", "redrive_service": "crm-sync"}):
        assert [c.id for c in handlers.targets("acme")] == ["crm-a", "crm-b"]
