"""The catalogue: every published event type and version, in one registry.

Adding a version: register it here beside the old one, add an upcaster from the previous
version, run ``leadtrail contracts generate``, add an example under ``examples/<type>/`` and
commit both. Never edit a published model: the contract test fails when a checked-in schema
changes.
"""

from __future__ import annotations

from pydantic import BaseModel

from contracts.events import consent, lead, privacy
from contracts.registry import EventDefinition, EventRegistry
from contracts.topics import CONSENT_EVENTS, LEAD_EVENTS, PRIVACY_EVENTS

__all__ = ["build_registry"]

INGEST = ("lead-ingest",)
CONSENT = ("consent-ledger",)
EVERYONE = (
    "lead-ingest",
    "consent-ledger",
    "retention-scheduler",
    "erasure-propagator",
    "crm-sync",
)


def _v1(
    event_type: str,
    data: type[BaseModel],
    topic: str,
    description: str,
    *,
    producers: tuple[str, ...],
    consumers: tuple[str, ...],
    pii: type[BaseModel] | None = None,
) -> EventDefinition:
    return EventDefinition(
        type=event_type,
        version=1,
        data=data,
        pii=pii,
        topic=topic,
        description=description,
        producers=producers,
        consumers=consumers,
    )


def build_registry() -> EventRegistry:
    registry = EventRegistry()
    lead_topic, consent_topic, privacy_topic = (
        LEAD_EVENTS.name,
        CONSENT_EVENTS.name,
        PRIVACY_EVENTS.name,
    )
    for definition in (
        _v1(
            "lead.captured",
            lead.LeadCapturedV1,
            lead_topic,
            "A lead was accepted from a web form or a third-party source.",
            pii=lead.LeadContactV1,
            producers=INGEST,
            consumers=("lead-ingest", "consent-ledger", "retention-scheduler", "crm-sync"),
        ),
        _v1(
            "lead.interaction_recorded",
            lead.LeadInteractionRecordedV1,
            lead_topic,
            "Answers gathered on a channel during qualification.",
            pii=lead.InteractionAnswersV1,
            producers=INGEST,
            consumers=("lead-ingest", "retention-scheduler", "crm-sync"),
        ),
        _v1(
            "lead.scored",
            lead.LeadScoredV1,
            lead_topic,
            "A score computed by the tenant's rules, with its explanation.",
            pii=lead.ScoreInputsV1,
            producers=INGEST,
            consumers=("lead-ingest", "crm-sync"),
        ),
        _v1(
            "lead.qualified",
            lead.LeadQualifiedV1,
            lead_topic,
            "The lead reached the qualification threshold.",
            producers=INGEST,
            consumers=("lead-ingest", "crm-sync"),
        ),
        _v1(
            "lead.score_reviewed",
            lead.LeadScoreReviewedV1,
            lead_topic,
            "A person overrode a score, with a reason.",
            pii=lead.ScoreReviewReasonV1,
            producers=INGEST,
            consumers=("lead-ingest", "crm-sync"),
        ),
        _v1(
            "privacy.request.received",
            privacy.PrivacyRequestReceivedV1,
            privacy_topic,
            "A data-subject request arrived (not yet verified).",
            pii=privacy.PrivacyRequestContactV1,
            producers=INGEST,
            consumers=("lead-ingest", "consent-ledger", "erasure-propagator"),
        ),
        _v1(
            "privacy.request.verified",
            privacy.PrivacyRequestVerifiedV1,
            privacy_topic,
            "The requester's identity was verified; the request may be executed.",
            producers=INGEST,
            consumers=("lead-ingest", "consent-ledger", "erasure-propagator"),
        ),
        _v1(
            "consent.granted",
            consent.ConsentGrantedV1,
            consent_topic,
            "The subject consented to a purpose; the event is the proof (R10).",
            pii=consent.ConsentProofV1,
            producers=CONSENT,
            consumers=EVERYONE,
        ),
        _v1(
            "consent.withdrawn",
            consent.ConsentWithdrawnV1,
            consent_topic,
            "Consent to a purpose was withdrawn (R11).",
            producers=CONSENT,
            consumers=EVERYONE,
        ),
        _v1(
            "consent.no_basis_remaining",
            consent.NoBasisRemainingV1,
            consent_topic,
            "No purpose of the subject has a lawful basis left; erase (R12).",
            producers=CONSENT,
            consumers=("erasure-propagator", "retention-scheduler"),
        ),
        _v1(
            "restriction.placed",
            consent.RestrictionPlacedV1,
            consent_topic,
            "Processing of the subject is restricted to storage.",
            producers=CONSENT,
            consumers=EVERYONE,
        ),
        _v1(
            "restriction.lifted",
            consent.RestrictionLiftedV1,
            consent_topic,
            "The restriction of processing was lifted.",
            producers=CONSENT,
            consumers=EVERYONE,
        ),
        _v1(
            "objection.recorded",
            consent.ObjectionRecordedV1,
            consent_topic,
            "The subject objected to processing for some purposes.",
            producers=CONSENT,
            consumers=EVERYONE,
        ),
        _v1(
            "suppression.added",
            consent.SuppressionAddedV1,
            consent_topic,
            "The subject was put on the tenant's suppression list.",
            producers=CONSENT,
            consumers=("lead-ingest", "crm-sync"),
        ),
    ):
        registry.register(definition)
    return registry
