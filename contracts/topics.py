"""The Kafka topics of Leadtrail and what travels on each.

Names here are logical; the physical name is ``<prefix><name>`` where the prefix comes from
settings (``LEADTRAIL_TOPIC_PREFIX``, default ``leadtrail.``), so tests can run on fresh topics.
Every topic is keyed by ``subject_id`` and kept forever (``retention.ms=-1``): the log is the
truth and read models are rebuilt from it. Personal data inside is crypto-shredded, not deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ALL_TOPICS",
    "CONSENT_EVENTS",
    "CRM_EVENTS",
    "CRM_SYNC",
    "DEAD_LETTERS",
    "ERASURE_EVENTS",
    "LEAD_EVENTS",
    "OPERATOR_EVENTS",
    "PRIVACY_EVENTS",
    "RETENTION_EVENTS",
    "TopicSpec",
]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    partitions: int = 6
    config: dict[str, str] = field(default_factory=lambda: {"retention.ms": "-1"})

    def physical(self, prefix: str) -> str:
        return f"{prefix}{self.name}"


LEAD_EVENTS = TopicSpec(
    "lead-events", "Lead lifecycle: capture, interactions, qualification, scoring, rectification."
)
CONSENT_EVENTS = TopicSpec(
    "consent-events", "Consent grants and withdrawals, objections, restrictions, suppression."
)
PRIVACY_EVENTS = TopicSpec("privacy-events", "Data-subject requests: received, verified, answered.")
RETENTION_EVENTS = TopicSpec("retention-events", "Retention policies, legal holds and expirations.")
ERASURE_EVENTS = TopicSpec(
    "erasure-events", "Erasure and rectification orchestration, receipts, completion, overdue."
)
CRM_EVENTS = TopicSpec("crm-events", "CRM pushes, failures, deletions, recipient changes.")
CRM_SYNC = TopicSpec(
    "crm-sync", "Pull-mode feed for CRM-side consumers, with the tenant's field mapping applied."
)
OPERATOR_EVENTS = TopicSpec(
    "operator-events",
    "Operators' and DPOs' actions beside the domain events: redrives, verifications started.",
    partitions=1,
)
DEAD_LETTERS = TopicSpec(
    "dead-letters",
    "Messages a consumer could not handle, with the error and where they came from.",
    partitions=3,
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    LEAD_EVENTS,
    CONSENT_EVENTS,
    PRIVACY_EVENTS,
    RETENTION_EVENTS,
    ERASURE_EVENTS,
    CRM_EVENTS,
    CRM_SYNC,
    OPERATOR_EVENTS,
    DEAD_LETTERS,
)
