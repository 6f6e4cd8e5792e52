"""When a data-subject request must be answered.

* access, portability, rectification, restriction, objection: one month (R22; GDPR art. 12(3)),
  counted here as ``request_deadline_days`` calendar days;
* erasure: two working weeks (R25), counted as ``erasure_deadline_working_days`` Monday-Friday
  days after the day of receipt, at the same time of day.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from services.common.clock import add_working_days

__all__ = ["add_working_days", "request_deadline"]


def request_deadline(
    request_type: str, received_at: datetime, *, calendar_days: int, erasure_working_days: int
) -> datetime:
    if request_type == "erasure":
        return add_working_days(received_at, erasure_working_days)
    return received_at + timedelta(days=calendar_days)
