"""One validation for a consent, whichever service it reaches (issue 16 item 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.consent_claims import CONSENT_CLOCK_SKEW, check_consent
from services.common.http import ProblemError
from services.common.purposes import DEFAULT_PURPOSES

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def check(purposes: list[str], given_at: datetime) -> None:
    check_consent(
        purposes=purposes,
        given_at=given_at,
        now=NOW,
        declared=DEFAULT_PURPOSES,
        given_at_field="consent.given_at",
        purpose_field="consent.purposes.{index}",
    )


def test_a_declared_purpose_given_up_to_now_is_fine() -> None:
    check(["crm_sync", "marketing_email"], NOW - timedelta(days=400))
    check(["crm_sync"], NOW + CONSENT_CLOCK_SKEW)


def test_a_consent_from_the_future_is_refused() -> None:
    with pytest.raises(ProblemError) as refused:
        check(["crm_sync"], datetime(2099, 1, 1, tzinfo=UTC))
    assert (refused.value.status, refused.value.slug) == (422, "consent-in-the-future")
    assert refused.value.extensions["errors"][0]["field"] == "consent.given_at"


def test_undeclared_purposes_are_refused_by_position() -> None:
    with pytest.raises(ProblemError) as refused:
        check(["crm_sync", "telepathy", "astrology"], NOW)
    assert (refused.value.status, refused.value.slug) == (422, "unknown-purpose")
    assert [e["field"] for e in refused.value.extensions["errors"]] == [
        "consent.purposes.1",
        "consent.purposes.2",
    ]
