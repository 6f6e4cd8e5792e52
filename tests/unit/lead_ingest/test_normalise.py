from __future__ import annotations

import pytest

from services.lead_ingest.normalise import (
    InvalidContactError,
    email_link_form,
    normalise_email,
    normalise_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("maria.rossi@example.org", "maria.rossi@example.org"),
        ("  Maria.Rossi@EXAMPLE.org ", "Maria.Rossi@example.org"),
        ("josé@bücher.example", "josé@bücher.example"),
    ],
)
def test_emails_are_normalised(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


def test_the_same_mailbox_links_whatever_its_case() -> None:
    assert email_link_form(normalise_email("Maria.Rossi@Example.org")) == email_link_form(
        normalise_email("maria.rossi@example.ORG")
    )


@pytest.mark.parametrize("raw", ["", "maria", "maria@", "@example.org", "a b@example.org"])
def test_invalid_emails_are_rejected_with_the_field(raw: str) -> None:
    with pytest.raises(InvalidContactError) as caught:
        normalise_email(raw)
    assert caught.value.field == "email"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("347 123 4567", "IT", "+393471234567"),
        ("+39 347 123 4567", None, "+393471234567"),
        ("0039 347 1234567", "IT", "+393471234567"),
        ("(202) 456-1111", "US", "+12024561111"),
        ("+44 20 7946 0958", "IT", "+442079460958"),
    ],
)
def test_phones_become_e164(raw: str, region: str | None, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [("347 123 4567", None), ("12", "IT"), ("not a phone", "IT"), ("+39 000", None)],
)
def test_invalid_phones_are_rejected(raw: str, region: str | None) -> None:
    with pytest.raises(InvalidContactError) as caught:
        normalise_phone(raw, region)
    assert caught.value.field == "phone"
