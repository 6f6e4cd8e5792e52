"""The catalogue: every published event type and version, in one registry.

Adding a version: register it here beside the old one, add an upcaster from the previous
version, run ``make contracts``, add an example under ``examples/<type>/`` and
commit both. Never edit a published model: the contract test fails when a checked-in schema
changes.

Versions beyond v1 and their upcasters:

* ``lead.scored`` v2 (:func:`upcast_lead_scored_v1_v2`): each matched criterion carries its
  condition (``rule``), so a score stays explainable after the tenant's rules change (R8).
* ``crm.record_deleted`` v2 (:func:`upcast_crm_record_deleted_v1_v2`): ``reason`` says why the
  record was deleted, an erasure or no basis left for ``crm_sync`` (R11, R12).
* ``lead.score_reviewed`` v2 (:func:`upcast_lead_score_reviewed_v1_v2`) and
  ``privacy.request.verified`` v2 (:func:`upcast_privacy_request_verified_v1_v2`): the
  reviewer and the attester (a name or an e-mail) travel encrypted in ``pii``; in clear only a
  keyed hash (``reviewer_hash``, ``attested_by_hash``).

An upcaster cannot encrypt: a v1 event's clear value is carried to the new version as a
``legacy_*`` field. Views show it like the encrypted value until the subject is erased, then
drop it (the read models strip it, ``leadtrail audit`` hides ``legacy_*`` facts of an erased
subject); on the log itself it stays as written (docs/architecture.md, "Personal data").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from contracts.events import consent, crm, erasure, lead, operator, privacy, retention
from contracts.registry import EventDefinition, EventRegistry
from contracts.topics import (
    CONSENT_EVENTS,
    CRM_EVENTS,
    CRM_SYNC,
    ERASURE_EVENTS,
    LEAD_EVENTS,
    OPERATOR_EVENTS,
    PRIVACY_EVENTS,
    RETENTION_EVENTS,
)

__all__ = [
    "build_registry",
    "upcast_crm_record_deleted_v1_v2",
    "upcast_lead_score_reviewed_v1_v2",
    "upcast_lead_scored_v1_v2",
    "upcast_privacy_request_verified_v1_v2",
    "upcast_score_review_pii_v1_v2",
]

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
        EventDefinition(
            type="lead.scored",
            version=2,
            data=lead.LeadScoredV2,
            pii=lead.ScoreInputsV1,
            topic=lead_topic,
            description="A score computed by the tenant's rules, with its explanation: each "
            "matched criterion with the condition it tested.",
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
            consumers=("lead-ingest", "retention-scheduler", "crm-sync"),
        ),
        EventDefinition(
            type="lead.score_reviewed",
            version=2,
            data=lead.LeadScoreReviewedV2,
            pii=lead.ScoreReviewV2,
            topic=lead_topic,
            description="A person overrode a score, with a reason; who reviewed is encrypted "
            "with the reason (a keyed hash of it in clear).",
            producers=INGEST,
            consumers=("lead-ingest", "retention-scheduler", "crm-sync"),
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
            consumers=EVERYONE,
        ),
        EventDefinition(
            type="privacy.request.verified",
            version=2,
            data=privacy.PrivacyRequestVerifiedV2,
            pii=privacy.PrivacyRequestAttestationV2,
            topic=privacy_topic,
            description="The requester's identity was verified; the request may be executed. "
            "Who attested it is encrypted (a keyed hash of it in clear).",
            producers=INGEST,
            consumers=EVERYONE,
        ),
        _v1(
            "privacy.export_part",
            privacy.ExportPartV1,
            privacy_topic,
            "One service's part of the answer to an access or portability request (R22, R23).",
            pii=privacy.ExportPartContentV1,
            producers=EVERYONE,
            consumers=INGEST,
        ),
        _v1(
            "privacy.request.completed",
            privacy.PrivacyRequestCompletedV1,
            privacy_topic,
            "The answer to a data-subject request is ready; for access and portability, the "
            "package can be downloaded (R22, R23, R26).",
            producers=INGEST,
            consumers=INGEST,
        ),
        _v1(
            "consent.granted",
            consent.ConsentGrantedV1,
            consent_topic,
            "The subject consented to a purpose; the event is the proof (R10).",
            pii=consent.ConsentProofV1,
            producers=CONSENT,
            consumers=("lead-ingest", "consent-ledger", "retention-scheduler", "crm-sync"),
        ),
        _v1(
            "consent.withdrawn",
            consent.ConsentWithdrawnV1,
            consent_topic,
            "Consent to a purpose was withdrawn (R11).",
            producers=CONSENT,
            consumers=("lead-ingest", "consent-ledger", "retention-scheduler", "crm-sync"),
        ),
        _v1(
            "consent.no_basis_remaining",
            consent.NoBasisRemainingV1,
            consent_topic,
            "No purpose of the subject has a lawful basis left; erase (R12).",
            producers=CONSENT,
            consumers=("lead-ingest", "consent-ledger", "erasure-propagator"),
        ),
        _v1(
            "restriction.placed",
            consent.RestrictionPlacedV1,
            consent_topic,
            "Processing of the subject is restricted to storage.",
            producers=CONSENT,
            consumers=("lead-ingest", "consent-ledger", "crm-sync"),
        ),
        _v1(
            "restriction.lifted",
            consent.RestrictionLiftedV1,
            consent_topic,
            "The restriction of processing was lifted.",
            producers=CONSENT,
            consumers=("lead-ingest", "consent-ledger", "crm-sync"),
        ),
        _v1(
            "objection.recorded",
            consent.ObjectionRecordedV1,
            consent_topic,
            "The subject objected to processing for some purposes.",
            producers=CONSENT,
            consumers=("lead-ingest", "consent-ledger", "crm-sync"),
        ),
        _v1(
            "suppression.added",
            consent.SuppressionAddedV1,
            consent_topic,
            "The subject was put on the tenant's suppression list.",
            producers=CONSENT,
            consumers=("lead-ingest", "consent-ledger"),
        ),
        *_retention_and_erasure(),
        *_crm(),
        *_operator(),
    ):
        registry.register(definition)
    registry.upcaster("lead.scored", 1)(upcast_lead_scored_v1_v2)
    registry.upcaster("crm.record_deleted", 1)(upcast_crm_record_deleted_v1_v2)
    registry.upcaster("lead.score_reviewed", 1)(upcast_lead_score_reviewed_v1_v2)
    registry.pii_upcaster("lead.score_reviewed", 1)(upcast_score_review_pii_v1_v2)
    registry.upcaster("privacy.request.verified", 1)(upcast_privacy_request_verified_v1_v2)
    return registry


def upcast_crm_record_deleted_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """``crm.record_deleted`` v1 -> v2: ``reason: "erasure"``. A v1 producer deleted CRM
    records for erasures only."""
    return {**data, "reason": "erasure"}


def upcast_lead_scored_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """``lead.scored`` v1 -> v2: every matched criterion gets ``rule: null``.

    A v1 producer recorded only the criterion's id, answer key and points. Its condition is
    not in the log, and today's rules file may state another one under the same id (the file
    keeps only its current version), so it is never looked up: null means "not recorded".
    The personal part (``ScoreInputsV1``) is the same in both versions: no pii upcaster.
    """
    return {**data, "matched": [{**match, "rule": None} for match in data["matched"]]}


def upcast_lead_score_reviewed_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """``lead.score_reviewed`` v1 -> v2: the reviewer v1 recorded in clear becomes
    ``legacy_reviewer`` (an upcaster cannot encrypt it); no keyed hash was recorded."""
    rest = {name: value for name, value in data.items() if name != "reviewer"}
    return {**rest, "reviewer_hash": None, "legacy_reviewer": data["reviewer"]}


def upcast_score_review_pii_v1_v2(pii: dict[str, Any]) -> dict[str, Any]:
    """The personal part of ``lead.score_reviewed`` v1 -> v2: v1 encrypted only the reason."""
    return {**pii, "reviewer": None}


def upcast_privacy_request_verified_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """``privacy.request.verified`` v1 -> v2: the attester v1 recorded in clear becomes
    ``legacy_attested_by``; no keyed hash was recorded. v1 had no personal part."""
    rest = {name: value for name, value in data.items() if name != "attested_by"}
    return {**rest, "attested_by_hash": None, "legacy_attested_by": data.get("attested_by")}


RETENTION = ("retention-scheduler",)
ERASURE = ("erasure-propagator",)
RECEIPT_SERVICES = ("lead-ingest", "consent-ledger", "retention-scheduler", "crm-sync")


def _retention_and_erasure() -> list[EventDefinition]:
    retention_topic, erasure_topic = RETENTION_EVENTS.name, ERASURE_EVENTS.name
    return [
        _v1(
            "retention.policy_set",
            retention.RetentionPolicySetV1,
            retention_topic,
            "A tenant set the retention period of a data category (R15, R16).",
            producers=("operator",),
            consumers=RETENTION,
        ),
        _v1(
            "retention.hold_placed",
            retention.RetentionHoldPlacedV1,
            retention_topic,
            "A legal hold suspends expiry and erasure (R18).",
            producers=("operator",),
            consumers=(*RETENTION, *ERASURE),
        ),
        _v1(
            "retention.hold_released",
            retention.RetentionHoldReleasedV1,
            retention_topic,
            "A legal hold was released; deferred erasures run.",
            producers=("operator",),
            consumers=(*RETENTION, *ERASURE),
        ),
        _v1(
            "retention.expired",
            retention.RetentionExpiredV1,
            retention_topic,
            "A data category of the subject reached the end of its retention period (R17).",
            producers=RETENTION,
            consumers=("retention-scheduler", "erasure-propagator"),
        ),
        _v1(
            "erasure.requested",
            erasure.ErasureRequestedV1,
            erasure_topic,
            "The subject's keys are destroyed; services anonymise and send receipts (R20, R25).",
            producers=ERASURE,
            consumers=RECEIPT_SERVICES,
        ),
        _v1(
            "erasure.deferred",
            erasure.ErasureDeferredV1,
            erasure_topic,
            "An erasure met a legal hold and waits for its release (R18).",
            producers=ERASURE,
            consumers=("lead-ingest",),
        ),
        _v1(
            "erasure.receipt",
            erasure.ErasureReceiptV1,
            erasure_topic,
            "A service confirms what it erased.",
            producers=RECEIPT_SERVICES,
            consumers=("lead-ingest", "erasure-propagator"),
        ),
        _v1(
            "erasure.completed",
            erasure.ErasureCompletedV1,
            erasure_topic,
            "Every expected receipt is in; the subject can be told (R25).",
            producers=ERASURE,
            consumers=("lead-ingest",),
        ),
        _v1(
            "erasure.overdue",
            erasure.ErasureOverdueV1,
            erasure_topic,
            "An erasure missed its deadline.",
            producers=ERASURE,
            consumers=("lead-ingest", "operator"),
        ),
        _v1(
            "lead.rectified",
            erasure.LeadRectifiedV1,
            LEAD_EVENTS.name,
            "Corrected personal data of the subject, to apply everywhere (R24).",
            pii=erasure.RectifiedContactV1,
            producers=ERASURE,
            consumers=("lead-ingest", "retention-scheduler", "crm-sync"),
        ),
        _v1(
            "rectification.receipt",
            erasure.RectificationReceiptV1,
            erasure_topic,
            "A service confirms it applied a rectification.",
            producers=("lead-ingest", "crm-sync"),
            consumers=("lead-ingest", "erasure-propagator"),
        ),
        _v1(
            "rectification.completed",
            erasure.RectificationCompletedV1,
            erasure_topic,
            "Every expected rectification receipt is in; the subject can be told (R24).",
            producers=ERASURE,
            consumers=("lead-ingest",),
        ),
    ]


def _operator() -> list[EventDefinition]:
    return [
        _v1(
            "operator.dead_letter_redriven",
            operator.DeadLetterRedrivenV1,
            OPERATOR_EVENTS.name,
            "A dead letter's record was sent to its topic again, by the account named.",
            producers=("operator",),
            consumers=("operator",),
        ),
        _v1(
            "operator.log_verification_started",
            operator.LogVerificationStartedV1,
            OPERATOR_EVENTS.name,
            "A verification of the log's integrity seals was started, by the account named.",
            producers=("operator",),
            consumers=("operator",),
        ),
    ]


def _crm() -> list[EventDefinition]:
    crm_sync = ("crm-sync",)
    return [
        _v1(
            "crm.lead_synced",
            crm.CrmLeadSyncedV1,
            CRM_EVENTS.name,
            "The lead was created or updated in a tenant's CRM (R7).",
            producers=crm_sync,
            consumers=("operator",),
        ),
        _v1(
            "crm.sync_failed",
            crm.CrmSyncFailedV1,
            CRM_EVENTS.name,
            "A CRM call failed; transient failures are retried, others dead-lettered.",
            producers=crm_sync,
            consumers=("operator",),
        ),
        _v1(
            "crm.record_deleted",
            crm.CrmRecordDeletedV1,
            CRM_EVENTS.name,
            "The CRM confirmed it deleted the lead's record (R25).",
            producers=crm_sync,
            consumers=("operator",),
        ),
        EventDefinition(
            type="crm.record_deleted",
            version=2,
            data=crm.CrmRecordDeletedV2,
            pii=None,
            topic=CRM_EVENTS.name,
            description="The CRM confirmed it deleted the lead's record, for an erasure (R25) "
            "or because no basis for the crm_sync purpose remains (R11, R12).",
            producers=crm_sync,
            consumers=("operator",),
        ),
        _v1(
            "crm.recipient_changed",
            crm.CrmRecipientChangedV1,
            CRM_EVENTS.name,
            "A recipient (CRM connection) of a tenant was added, changed or removed (R27).",
            producers=crm_sync,
            consumers=("operator",),
        ),
        _v1(
            "crm.lead_upserted",
            crm.CrmLeadUpsertedV1,
            CRM_SYNC.name,
            "Pull feed for CRM-side consumers: the lead with the tenant's field mapping.",
            pii=crm.MappedFieldsV1,
            producers=crm_sync,
            consumers=("crm-side consumers",),
        ),
        _v1(
            "crm.lead_deleted",
            crm.CrmLeadDeletedV1,
            CRM_SYNC.name,
            "Pull feed for CRM-side consumers: delete the lead (erasure).",
            producers=crm_sync,
            consumers=("crm-side consumers",),
        ),
    ]
