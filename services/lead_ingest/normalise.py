"""Normalising contact details with well-kept libraries (R2, R5).

* e-mail: ``email-validator`` (RFC 5322/6531 syntax, IDNA domains, normalised form); no DNS
  lookups at ingest, so a slow resolver never delays a lead;
* phone: Google's ``phonenumbers`` (libphonenumber metadata) to E.164, with the tenant's default
  region for national numbers.
"""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

__all__ = ["InvalidContactError", "email_link_form", "normalise_email", "normalise_phone"]


class InvalidContactError(ValueError):
    """A contact detail that can't be normalised; ``field`` names it for the error body."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def normalise_email(raw: str) -> str:
    """The normalised address (domain lower-cased and IDNA-checked, local part kept)."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidContactError("email", str(error)) from None


def email_link_form(normalised: str) -> str:
    """The form used to recognise the same person: case-insensitive as mailbox providers are."""
    return normalised.casefold()


def normalise_phone(raw: str, default_region: str | None) -> str:
    """E.164 (``+393471234567``). National numbers need ``default_region`` (ISO 3166 alpha-2)."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as error:
        raise InvalidContactError("phone", f"not a phone number: {error}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidContactError("phone", "not a valid phone number for its region")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
