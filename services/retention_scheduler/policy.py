"""Retention categories, the seed defaults of R15, and the rules for tenant policies (R16).

Periods are whole days. The defaults are also the maxima: a tenant may shorten a period, never
lengthen it (an operator can lower or raise the maxima for the installation in
``<config dir>/retention-maximums.yaml``, e.g. ``{lead_data: 365}``).

========================  =======  ==============  ===========================================
category                  days     counted from    source (REQUIREMENTS.md R15)
========================  =======  ==============  ===========================================
lead_data                 730      last activity   end-user lead data 2 years (000 §5.1.2)
b2b_profile               1826     last update     B2B profiles 5 years from last update (003)
marketing_prospect        1095     last activity   prospects 3 years after the relationship
analytics                 760      capture         25 months, then aggregates only (003)
privacy_request_records   1826     last update     request data 5 years after last contact
web_logs                  7        capture         web logs 7 days, IP shortened (001)
support_contact           2191     last activity   support/contact 6 years (001)
unanswered_invitation     91       capture         unanswered invitations 3 months (003)
========================  =======  ==============  ===========================================

Leadtrail schedules ``lead_data`` for every subject with a web-form lead and ``b2b_profile`` for
subjects with third-party data; the others are declared for tenants' policies and documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from contracts.events.retention import Anchor, DataCategory

__all__ = [
    "DEFAULTS",
    "CategoryPolicy",
    "PolicyError",
    "due_at",
    "load_maximums",
    "validate_period",
]


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class CategoryPolicy:
    category: DataCategory
    period_days: int
    anchor: Anchor


DEFAULTS: dict[str, CategoryPolicy] = {
    policy.category: policy
    for policy in (
        CategoryPolicy("lead_data", 730, "last_activity"),
        CategoryPolicy("b2b_profile", 1826, "last_update"),
        CategoryPolicy("marketing_prospect", 1095, "last_activity"),
        CategoryPolicy("analytics", 760, "capture"),
        CategoryPolicy("privacy_request_records", 1826, "last_update"),
        CategoryPolicy("web_logs", 7, "capture"),
        CategoryPolicy("support_contact", 2191, "last_activity"),
        CategoryPolicy("unanswered_invitation", 91, "capture"),
    )
}

MAXIMUMS_FILE = "retention-maximums.yaml"


def load_maximums(config_dir: Path) -> dict[str, int]:
    """The installation's maximum period per category: the defaults, or the operator's file."""
    maximums = {name: policy.period_days for name, policy in DEFAULTS.items()}
    path = config_dir / MAXIMUMS_FILE
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise PolicyError(f"{path}: expected a mapping of category to days")
        for name, days in loaded.items():
            if name not in DEFAULTS or not isinstance(days, int) or days < 1:
                raise PolicyError(f"{path}: {name}: expected a known category and whole days")
            maximums[name] = days
    return maximums


def validate_period(category: str, period_days: int, maximums: dict[str, int]) -> None:
    """R16: shorter is always fine; longer than the maximum is refused with the reason."""
    if category not in DEFAULTS:
        raise PolicyError(
            f"unknown data category {category!r}; known: {', '.join(sorted(DEFAULTS))}"
        )
    if period_days < 1:
        raise PolicyError("a retention period is at least one day")
    if period_days > maximums[category]:
        raise PolicyError(
            f"{category}: {period_days} days is longer than the maximum of "
            f"{maximums[category]} days; a tenant may only shorten retention (R16)"
        )


def due_at(anchor_at: datetime, period_days: int) -> datetime:
    return anchor_at + timedelta(days=period_days)
