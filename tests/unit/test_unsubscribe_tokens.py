from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from services.consent_ledger.unsubscribe import (
    InvalidTokenError,
    UnsubscribeToken,
    issue,
    verify,
)

KEY = b"k" * 32
NOW = datetime(2026, 11, 1, tzinfo=UTC)
TOKEN = UnsubscribeToken("acme", "sub_1", "marketing_email", NOW + timedelta(days=30))


def test_a_token_round_trips() -> None:
    assert verify(KEY, issue(KEY, TOKEN), NOW) == TOKEN


def test_expired_tokens_are_refused() -> None:
    with pytest.raises(InvalidTokenError, match="expired"):
        verify(KEY, issue(KEY, TOKEN), NOW + timedelta(days=31))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "x" + t,
        lambda t: t.replace(".", ""),
        lambda t: "",
        lambda t: "e30." + t.split(".")[1],
    ],
)
def test_forged_or_damaged_tokens_are_refused(mangle: object) -> None:
    with pytest.raises(InvalidTokenError):
        verify(KEY, mangle(issue(KEY, TOKEN)), NOW)  # type: ignore[operator]


def test_another_key_is_refused() -> None:
    with pytest.raises(InvalidTokenError):
        verify(b"o" * 32, issue(KEY, TOKEN), NOW)


@pytest.mark.parametrize("text", ["é", "é.é", "ü" + "." + "x" * 43, "e30.\u00e9\u00e9"])
def test_non_ascii_tokens_are_refused_not_a_crash(text: str) -> None:
    with pytest.raises(InvalidTokenError):
        verify(KEY, text, NOW)


def test_a_token_names_the_grant_it_withdraws() -> None:
    token = UnsubscribeToken("acme", "sub_1", "marketing_email", TOKEN.expires_at, "evt-grant-1")
    assert verify(KEY, issue(KEY, token), NOW).grant_id == "evt-grant-1"


def test_tokens_from_before_grant_ids_still_verify() -> None:
    legacy = issue(KEY, TOKEN)  # issued without a grant id, as every token before issue 16
    assert '"g"' not in base64.urlsafe_b64decode(legacy.split(".")[0] + "==").decode()
    assert verify(KEY, legacy, NOW).grant_id is None
