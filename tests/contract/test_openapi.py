"""The checked-in OpenAPI documents describe the services' current HTTP APIs."""

from __future__ import annotations

from tools.openapi import OPENAPI_DIR, render_openapi


def test_openapi_documents_are_up_to_date() -> None:
    expected = render_openapi()
    on_disk = {path.name: path.read_text() for path in OPENAPI_DIR.glob("*.openapi.json")}
    assert "lead-ingest.openapi.json" in expected
    assert sorted(on_disk) == sorted(expected)
    stale = [name for name, text in expected.items() if on_disk[name] != text]
    assert not stale, f"run `make contracts`: {stale} changed"
