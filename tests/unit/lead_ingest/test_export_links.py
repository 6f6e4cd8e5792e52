"""Signed, expiring download links for access/portability packages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from services.lead_ingest.export_assembly import LinkError, check, export_link

KEY = b"k" * 32
NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
REQUEST = {"_id": "pr_1", "type": "access", "export_formats": ["json", "csv"]}


def link_params(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return {
        "request_id": parts.path.rsplit("/", 1)[1],
        "fmt": query["format"],
        "expires": int(query["expires"]),
        "signature": query["signature"],
    }


def issued() -> Any:
    link = export_link(
        KEY, ttl_s=3600, now=NOW, base_url="http://ingest/", tenant_id="acme", request=REQUEST
    )
    assert link is not None
    return link


def test_a_link_is_issued_for_both_formats_and_accepted_until_it_expires() -> None:
    link = issued()
    assert link.url.startswith("http://ingest/v1/exports/pr_1?")
    assert link.expires_at == NOW + timedelta(hours=1)
    for url, fmt in ((link.url, "json"), (link.csv_url, "csv")):
        params = link_params(url)
        assert params["fmt"] == fmt
        check(KEY, tenant_id="acme", now=NOW + timedelta(minutes=59), **params)
    with pytest.raises(LinkError) as expired:
        check(
            KEY, tenant_id="acme", now=NOW + timedelta(hours=1, seconds=1), **link_params(link.url)
        )
    assert (expired.value.status, expired.value.slug) == (410, "export-link-expired")


@pytest.mark.parametrize(
    "change",
    [
        {"request_id": "pr_2"},
        {"fmt": "csv"},
        {"expires": 4102444800},
        {"signature": "0" * 64},
        {"tenant_id": "globex"},
    ],
    ids=["request", "format", "expiry", "signature", "tenant"],
)
def test_a_changed_link_is_refused(change: dict[str, Any]) -> None:
    params = {"tenant_id": "acme", **link_params(issued().url), **change}
    with pytest.raises(LinkError) as refused:
        check(KEY, now=NOW, **params)
    assert (refused.value.status, refused.value.slug) == (403, "invalid-export-signature")


def test_a_link_signed_with_another_key_is_refused() -> None:
    with pytest.raises(LinkError):
        check(b"x" * 32, tenant_id="acme", now=NOW, **link_params(issued().url))


@pytest.mark.parametrize(
    "request_document",
    [
        {"_id": "pr_1", "type": "erasure", "export_formats": ["json"]},
        {"_id": "pr_1", "type": "access"},
    ],
    ids=["not an export request", "not ready"],
)
def test_no_link_without_a_package(request_document: dict[str, Any]) -> None:
    assert (
        export_link(
            KEY, ttl_s=60, now=NOW, base_url="http://x", tenant_id="acme", request=request_document
        )
        is None
    )
