"""One validation for a consent a tenant tells us about, whichever service it tells (R10).

A consent arrives either with a lead (lead-ingest, ``consent`` of ``POST /v1/leads``) or on
its own (consent-ledger, ``POST /v1/subjects/{id}/consents``); both become the same
``consent.granted`` events, so both are held to the same rules by :func:`check_consent`:

* ``given_at`` is not later than now (allowing :data:`CONSENT_CLOCK_SKEW` for clocks that
  differ a little): retention dates are anchored at it, so a future one would stretch them;
* every purpose is one the tenant declared (R9): consent to an undeclared purpose has no basis
  to attach to, and the decision would never allow it anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from services.common.http import ProblemError
from services.common.purposes import PurposeFile

__all__ = ["CONSENT_CLOCK_SKEW", "check_consent"]

CONSENT_CLOCK_SKEW = timedelta(minutes=5)


def check_consent(
    *,
    purposes: Sequence[str],
    given_at: datetime,
    now: datetime,
    declared: PurposeFile,
    given_at_field: str,
    purpose_field: str,
) -> None:
    """Raise a 422 problem (``consent-in-the-future``, ``unknown-purpose``) naming the field:
    ``given_at_field`` for the time, ``purpose_field`` for a purpose (``{index}`` is replaced
    by the purpose's position)."""
    latest = now + CONSENT_CLOCK_SKEW
    if given_at > latest:
        message = f"given_at is later than now ({latest.isoformat()} allowing for clock skew)"
        raise ProblemError(
            422,
            "consent-in-the-future",
            "Consent cannot be given in the future",
            message,
            errors=[{"field": given_at_field, "message": message}],
        )
    unknown = [
        {
            "field": purpose_field.format(index=index),
            "message": f"{purpose} is not a purpose the tenant declared",
        }
        for index, purpose in enumerate(purposes)
        if purpose not in declared.purposes
    ]
    if unknown:
        raise ProblemError(
            422,
            "unknown-purpose",
            "Unknown purpose",
            "; ".join(error["message"] for error in unknown),
            errors=unknown,
        )
