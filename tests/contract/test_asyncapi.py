"""The checked-in AsyncAPI documents describe the services' current subscriptions."""

from __future__ import annotations

import json

from services import declarations
from tools.asyncapi import ASYNCAPI_DIR, render_asyncapi


def test_asyncapi_documents_are_up_to_date() -> None:
    expected = render_asyncapi()
    on_disk = {path.name: path.read_text() for path in ASYNCAPI_DIR.glob("*.asyncapi.json")}
    assert sorted(on_disk) == sorted(expected)
    stale = [name for name, text in expected.items() if on_disk[name] != text]
    assert not stale, f"run `make contracts`: {stale} changed"


def test_there_is_one_document_per_service() -> None:
    names = {declaration.name for declaration in declarations()}
    assert names == {
        "lead-ingest",
        "consent-ledger",
        "retention-scheduler",
        "erasure-propagator",
        "crm-sync",
    }
    for name in names:
        document = json.loads((ASYNCAPI_DIR / f"{name}.asyncapi.json").read_text())
        assert document["asyncapi"].startswith("3.")
