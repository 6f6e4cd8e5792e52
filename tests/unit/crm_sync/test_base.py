"""The shared pieces: contact, error, Retry-After, connection config and its secret."""

from __future__ import annotations

import stat
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.crm_sync.adapters import (
    ConnectionConfig,
    CrmAdapter,
    CrmContact,
    CrmError,
    build_adapter,
    parse_retry_after,
)
from services.crm_sync.adapters.config import SecretUnavailableError
from services.crm_sync.adapters.hubspot import HubSpotAdapter
from tests.crm_fakes.samples import sample_contact

NOW = 1_800_000_000.0


# -- CrmContact ---------------------------------------------------------------------------
def test_contact_repr_shows_no_personal_data() -> None:
    contact = sample_contact(extra={"leadtrail_summary": "budget=15000"})
    shown = repr(contact)
    assert "01JF8Z6V2M9Q4T7X1C3B5N8K0D" in shown
    for personal in ("jane", "Doe", "+49151", "Example GmbH", "Purchasing", "budget"):
        assert personal not in shown


@pytest.mark.parametrize(
    "source", ["web_form", "third_party:typeform", "third_party:Acme Leads GmbH (DACH)"]
)
def test_contact_sources(source: str) -> None:
    assert sample_contact(source=source).source == source


@pytest.mark.parametrize(
    "source", ["", "partner", "third_party:", "third_party:a\nb", "third_party:" + "x" * 201]
)
def test_contact_rejects_other_sources(source: str) -> None:
    with pytest.raises(ValueError, match="source"):
        sample_contact(source=source)


def test_full_name() -> None:
    assert sample_contact().full_name == "Jane Doe"
    assert sample_contact(first_name=None).full_name == "Doe"
    assert sample_contact(first_name=None, last_name=None).full_name is None


# -- CrmError and Retry-After ------------------------------------------------------------
def test_crm_error_fields_and_repr() -> None:
    error = CrmError(
        "HubSpot x failed", status=429, transient=True, retry_after=2.5, body="b" * 5000
    )
    assert str(error) == "HubSpot x failed"
    assert (error.status, error.transient, error.retry_after) == (429, True, 2.5)
    assert error.body == "b" * 2000
    assert repr(error) == (
        "CrmError('HubSpot x failed', status=429, transient=True, retry_after=2.5)"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        (formatdate(NOW + 30, usegmt=True), 30.0),
        (formatdate(NOW - 30, usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


# -- ConnectionConfig ---------------------------------------------------------------------
def _config(**fields: Any) -> ConnectionConfig:
    return ConnectionConfig.model_validate({"id": "c1", "secret_env": "TOKEN", **fields})


def test_defaults_are_the_vendors_urls() -> None:
    assert _config(kind="hubspot").api_root == "https://api.hubapi.com"
    assert _config(kind="pipedrive").api_root == "https://api.pipedrive.com"
    salesforce = _config(kind="salesforce", instance_url="https://acme.my.salesforce.com/")
    assert salesforce.api_root == "https://acme.my.salesforce.com"
    assert salesforce.api_version == "v60.0"
    assert _config(kind="hubspot", base_url="http://127.0.0.1:8080").api_root == (
        "http://127.0.0.1:8080"
    )
    assert _config(kind="pipedrive", base_url="https://acme.pipedrive.com/api").api_root == (
        "https://acme.pipedrive.com/api"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "hubspot", "secret_file": "/run/secrets/t"}, "exactly one of"),
        ({"kind": "hubspot", "secret_env": None}, "exactly one of"),
        ({"kind": "hubspot", "create_lead": True}, "do not apply to kind 'hubspot'"),
        ({"kind": "pipedrive", "gdpr_delete": False}, "do not apply"),
        ({"kind": "salesforce"}, "instance_url"),
        ({"kind": "webhook"}, "webhook needs url"),
        ({"kind": "webhook", "url": "https://x.example", "base_url": "https://y"}, "not base_url"),
        ({"kind": "hubspot", "base_url": "http://api.hubapi.com"}, "https"),
        ({"kind": "hubspot", "base_url": "https://u:p@api.hubapi.com"}, "credentials"),
        ({"kind": "hubspot", "base_url": "https://api.hubapi.com?x=1"}, "query"),
        ({"kind": "hubspot", "base_url": "ftp://x"}, "http"),
        ({"kind": "salesforce", "instance_url": "https://a.my.salesforce.com",
          "api_version": "60"}, "api_version"),
        ({"kind": "salesforce", "instance_url": "https://a.my.salesforce.com",
          "external_id_field": "Lead_Id"}, "external_id_field"),
        ({"kind": "hubspot", "timeout_s": 0}, "timeout_s"),
        ({"kind": "zoho"}, "kind"),
        ({"kind": "hubspot", "token": "abc"}, "token"),
        ({"kind": "hubspot", "id": "Has Spaces"}, "id"),
    ],
)  # fmt: skip
def test_invalid_configs(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(**fields)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.5.6.7"])
def test_plain_http_to_loopback_is_allowed(host: str) -> None:
    assert _config(kind="hubspot", base_url=f"http://{host}:9/").api_root == f"http://{host}:9"


def test_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "  pat-na1-secret-value\n")
    config = _config(kind="hubspot")
    secret = config.resolve_secret()
    assert secret.get_secret_value() == "pat-na1-secret-value"
    assert "pat-na1" not in repr(secret) + str(secret) + repr(config) + str(config)


def test_secret_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("file-secret-value\n")
    path.chmod(stat.S_IRUSR)
    config = ConnectionConfig(id="c1", kind="hubspot", secret_file=path)
    assert config.resolve_secret().get_secret_value() == "file-secret-value"
    assert "file-secret-value" not in repr(config) + config.model_dump_json()


def test_missing_secrets_name_where_they_were_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKEN", raising=False)
    with pytest.raises(SecretUnavailableError, match="environment variable TOKEN is not set"):
        _config(kind="hubspot").resolve_secret()
    absent = ConnectionConfig(id="c1", kind="hubspot", secret_file=tmp_path / "nope")
    with pytest.raises(SecretUnavailableError, match="cannot read secret file"):
        absent.resolve_secret()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SecretUnavailableError, match="is empty"):
        ConnectionConfig(id="c1", kind="hubspot", secret_file=empty).resolve_secret()


async def test_the_secret_is_read_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKEN", raising=False)
    adapter = build_adapter(_config(kind="hubspot"))  # no secret yet: fine until a call
    try:
        assert isinstance(adapter, HubSpotAdapter)
        assert isinstance(adapter, CrmAdapter)
        with pytest.raises(CrmError, match="TOKEN is not set") as caught:
            await adapter.delete(None, "1")
        assert (caught.value.status, caught.value.transient) == (None, False)
    finally:
        await adapter.aclose()


def test_an_adapter_needs_a_config_of_its_kind() -> None:
    with pytest.raises(ValueError, match="hubspot"):
        HubSpotAdapter(_config(kind="pipedrive"))


def test_the_contact_type_is_frozen() -> None:
    contact: CrmContact = sample_contact()
    with pytest.raises(AttributeError):
        contact.email = "x@example.com"  # type: ignore[misc]
