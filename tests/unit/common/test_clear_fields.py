"""Fields stored in clear cannot carry personal data that crypto-shredding would miss."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from services.common.clear_fields import operator_hash
from services.consent_ledger.api import GrantIn
from services.lead_ingest.schemas import LeadIn


def _lead(**changes: Any) -> dict[str, Any]:
    lead: dict[str, Any] = {
        "source": {"kind": "web_form", "url": "https://acme.example/contact"},
        "contact": {"email": "maria.rossi@example.org"},
        "consent": {
            "purposes": ["crm_sync"],
            "notice_version": "2026-10",
            "given_at": "2026-11-02T09:15:03Z",
            "channel": "web_form",
            "collection_point": "https://acme.example/contact",
        },
    }
    for path, value in changes.items():
        section, field = path.split("__")
        lead[section][field] = value
    return lead


def test_clear_fields_take_what_they_are_for() -> None:
    LeadIn.model_validate(_lead())
    LeadIn.model_validate(_lead(source__url="http://127.0.0.1:8080/forms/contact-v2"))
    LeadIn.model_validate(_lead(consent__collection_point="form-contact_v2"))


@pytest.mark.parametrize(
    "change",
    [
        {"source__url": "https://acme.example/contact?email=maria.rossi@example.org"},
        {"source__url": "https://maria.rossi@acme.example/contact"},
        {"source__url": "https://acme.example/thanks#maria.rossi@example.org"},
        {"source__url": "https://acme.example/u/maria.rossi@example.org"},
        {"consent__notice_version": "maria.rossi@example.org"},
        {"consent__notice_version": "Maria Rossi"},
        {"consent__collection_point": "maria.rossi@example.org"},
        {"consent__collection_point": "call with Maria Rossi"},
        {"consent__collection_point": "https://acme.example/c?who=maria"},
    ],
)
def test_personal_data_in_a_clear_field_is_refused(change: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        LeadIn.model_validate(_lead(**change))


def _third_party(**changes: str) -> dict[str, Any]:
    attestation = {
        "legal_basis": "legitimate_interest",
        "statement": "Collected through our web forms with a privacy notice naming Acme",
        "attested_at": "2026-11-01T10:00:00Z",
        "reference": "contract B2B-2026-114",
    }
    source = {"kind": "third_party", "provider": "B2B Leads Ltd", "attestation": attestation}
    for field, value in changes.items():
        (source if field == "provider" else attestation)[field] = value
    return {**_lead(), "source": source}


def test_a_third_party_source_names_a_company_and_a_contract() -> None:
    LeadIn.model_validate(_third_party())
    LeadIn.model_validate(_third_party(provider="Smith & Co. (UK) Ltd", reference="PO #4411/B"))


@pytest.mark.parametrize(
    "change",
    [
        {"provider": "maria.rossi@example.org"},
        {"provider": " B2B Leads Ltd"},
        {"reference": "sent by maria.rossi@example.org"},
        {"reference": "+39 333 1234567"},
        {"statement": "Maria gave her consent, write to maria.rossi@example.org"},
        {"statement": "   "},
    ],
)
def test_an_e_mail_in_a_third_party_source_is_refused(change: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        LeadIn.model_validate(_third_party(**change))


def test_consent_ledger_holds_its_clear_fields_to_the_same_rules() -> None:
    grant = {
        "purpose": "crm_sync",
        "channel": "phone",
        "notice_version": "2026-10",
        "given_at": "2026-11-02T09:15:03Z",
    }
    GrantIn.model_validate(grant)
    for field, value in (
        ("notice_version", "maria.rossi@example.org"),
        ("collection_point", "https://acme.example/c?email=maria.rossi@example.org"),
    ):
        with pytest.raises(ValidationError):
            GrantIn.model_validate({**grant, field: value})


def test_an_operator_is_kept_in_clear_only_as_a_keyed_hash() -> None:
    secret, other = b"k" * 32, b"o" * 32
    digest = operator_hash(secret, "DPO@Acme.example ")
    assert digest == operator_hash(secret, "dpo@acme.example"), "trimmed, case-insensitive"
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert "dpo" not in digest
    assert digest != operator_hash(other, "dpo@acme.example"), "keyed: no key, no match"
    assert digest != operator_hash(secret, "ops@acme.example")
    assert digest != hashlib.sha256(b"dpo@acme.example").hexdigest(), "not a plain hash"
