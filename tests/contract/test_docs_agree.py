"""What the docs promise agrees with the code: the interaction body, crm-sync's settings and
defaults, the webhook's delete body and how a secret file is read (issue 16 item 15)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from services.common.settings import CommonSettings
from services.crm_sync.adapters.config import ConnectionConfig
from services.crm_sync.adapters.webhook import WebhookAdapter
from services.crm_sync.settings import CrmSettings
from services.lead_ingest.schemas import InteractionIn

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _section(path: Path, heading: str) -> str:
    text = path.read_text()
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ", maxsplit=1)[0]
    rest = text[start + len(heading) + 2 :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def _json_blocks(section: str) -> list[object]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


def test_the_documented_interaction_body_is_what_the_api_takes() -> None:
    section = _section(DOCS / "lead-ingest.md", "### An interaction")
    (example,) = _json_blocks(section)
    InteractionIn.model_validate(example)
    for field in InteractionIn.model_fields:
        assert f"`{field}`" in section, f"the docs do not describe {field!r}"


def test_every_crm_sync_setting_is_documented_with_its_real_default() -> None:
    section = _section(DOCS / "crm-sync.md", "## Settings")
    rows = dict(re.findall(r"^\| `(LEADTRAIL_[A-Z_]+)` \| ([^|]+?) \|", section, re.MULTILINE))
    own = set(CrmSettings.model_fields) - set(CommonSettings.model_fields)
    assert set(rows) == {f"LEADTRAIL_{name.upper()}" for name in own}
    for name in own:
        default = CrmSettings.model_fields[name].default
        assert type(default)(rows[f"LEADTRAIL_{name.upper()}"]) == default, name


async def test_the_documented_webhook_delete_body_is_what_crm_sync_sends() -> None:
    section = _section(DOCS / "crm-adapters.md", "## Webhook (any other CRM)")
    documented = next(
        block
        for block in _json_blocks(section)
        if isinstance(block, dict) and block.get("type") == "crm.lead_deleted"
    )
    sent: list[dict[str, object]] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(204)

    config = ConnectionConfig(
        id="hook", kind="webhook", url="https://hooks.example.org/in", secret_env="LT_DOC_SECRET"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LT_DOC_SECRET", "s3cret")
        async with httpx.AsyncClient(transport=httpx.MockTransport(receive)) as client:
            # As the dispatcher calls it on erasure: no contact, the record id.
            await WebhookAdapter(config, client).delete(None, "crm-123")
    assert sent[0]["lead"] == documented["lead"]
    assert set(sent[0]) == set(documented)


def test_a_secret_is_read_without_surrounding_whitespace_as_documented(tmp_path: Path) -> None:
    section = _section(DOCS / "crm-adapters.md", "## Connection configuration")
    assert "Whitespace around the value is stripped" in section
    path = tmp_path / "secret"
    path.write_text(" \tshared-secret \r\n")
    config = ConnectionConfig(
        id="hook", kind="webhook", url="https://hooks.example.org/in", secret_file=path
    )
    assert config.resolve_secret().get_secret_value() == "shared-secret"
