"""What the console's pages show, read through the services' declarations.

Every function takes the tenants the account may see and reads nothing of any other tenant;
a page for one tenant's object checks the tenant before it reads. Times are the store's
(UTC); "days left" count from the console's clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.common.store import Document
from services.crm_sync import declaration as crm_sync
from services.erasure_propagator import declaration as erasure_propagator
from services.lead_ingest import declaration as lead_ingest
from services.retention_scheduler import declaration as retention_scheduler

__all__ = [
    "ConnectionRow",
    "RequestRow",
    "TenantRetention",
    "connection_rows",
    "erasure_durations",
    "expiries_per_week",
    "request_rows",
    "tenant_retention",
]

REQUEST_TYPES = ("access", "portability", "erasure", "rectification", "restriction", "objection")
REQUEST_STATUSES = ("received", "verified", "completed", "overdue")


def _utc(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (the store hands back naive UTC)."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RequestRow:
    request_id: str
    tenant_id: str
    subject_id: str
    type: str
    status: str
    received_at: datetime | None
    verified_at: datetime | None
    completed_at: datetime | None
    deadline: datetime | None
    days_left: int | None
    receipts: list[tuple[str, datetime | None]]
    """(service, when it confirmed) of the request's execution."""
    waiting_for: list[str]
    """Services (or CRM connections) whose confirmation an open erasure still waits for."""

    @property
    def overdue(self) -> bool:
        return self.status == "overdue" or (
            self.completed_at is None and self.days_left is not None and self.days_left < 0
        )

    def csv_row(self) -> list[str]:
        def iso(value: datetime | None) -> str:
            return value.isoformat() if value is not None else ""

        return [
            self.request_id,
            self.tenant_id,
            self.subject_id,
            self.type,
            self.status,
            iso(self.received_at),
            iso(self.verified_at),
            iso(self.completed_at),
            iso(self.deadline),
            "" if self.days_left is None else str(self.days_left),
            "; ".join(f"{service} {iso(at)}" for service, at in self.receipts),
            "; ".join(self.waiting_for),
        ]


CSV_HEADER = [
    "request_id",
    "tenant_id",
    "subject_id",
    "type",
    "status",
    "received_at",
    "verified_at",
    "completed_at",
    "deadline",
    "days_left",
    "receipts",
    "waiting_for",
]


async def request_rows(
    db: AsyncDatabase[Document],
    tenant_ids: Sequence[str],
    now: datetime,
    *,
    request_type: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[RequestRow]:
    """The privacy requests of ``tenant_ids`` by deadline, with the receipts of their
    execution and, for an erasure still open, who has not confirmed yet."""
    documents = await lead_ingest.privacy_requests(
        db,
        tenant_ids,
        request_type=request_type,
        limit=None if status else limit,  # the status is derived: filtered below
    )
    waiting: dict[str, list[str]] = {}
    for erasure in await erasure_propagator.erasures(
        db, tenant_ids, states=("deferred", "requested")
    ):
        request_id = (erasure.get("trigger") or {}).get("request_id")
        if request_id:
            confirmed = set(erasure.get("receipts") or {})
            waiting[request_id] = sorted(set(erasure.get("expected") or ()) - confirmed)
    rows = []
    for document in documents:
        if request_type and document.get("type") != request_type:
            continue
        if status and document["status"] != status:
            continue
        deadline = _utc(document.get("deadline"))
        completed = _utc(document.get("completed_at"))
        rows.append(
            RequestRow(
                request_id=str(document["_id"]),
                tenant_id=str(document["tenant_id"]),
                subject_id=str(document.get("subject_id", "")),
                type=str(document.get("type", "")),
                status=str(document["status"]),
                received_at=_utc(document.get("received_at")),
                verified_at=_utc(document.get("verified_at")),
                completed_at=completed,
                deadline=deadline,
                days_left=None
                if deadline is None or completed is not None
                else (deadline - now).days,
                receipts=[
                    (str(receipt.get("service")), _utc(receipt.get("at")))
                    for receipt in document.get("receipts") or ()
                ],
                waiting_for=waiting.get(str(document["_id"]))
                or list(document.get("missing_receipts") or ()),
            )
        )
        if limit is not None and len(rows) >= limit:
            break
    return rows


@dataclass(frozen=True)
class TenantRetention:
    tenant_id: str
    periods: dict[str, int]
    """Category -> the tenant's period in days."""
    defaults: dict[str, int]
    """Category -> the seed default (also the installation's maximum unless configured)."""
    holds: list[Document] = field(default_factory=list)


async def tenant_retention(db: AsyncDatabase[Document], tenant_id: str) -> TenantRetention:
    from ops.operator import list_holds

    return TenantRetention(
        tenant_id=tenant_id,
        periods=await retention_scheduler.policies(db, tenant_id),
        defaults={
            name: policy.period_days for name, policy in retention_scheduler.DEFAULTS.items()
        },
        holds=await list_holds(erasure_propagator.holds(db), tenant_id),
    )


async def expiries_per_week(
    db: AsyncDatabase[Document], tenant_ids: Sequence[str], now: datetime, weeks: int = 13
) -> list[tuple[str, float]]:
    """How many schedules fall due in each of the next ``weeks`` weeks (13: about 90 days)."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    due = await retention_scheduler.upcoming_expiries(
        db, tenant_ids, start, start + timedelta(weeks=weeks)
    )
    counts = Counter(((_utc(at) or start) - start).days // 7 for _, _, at in due)
    return [
        ((start + timedelta(weeks=week)).strftime("%d %b"), float(counts.get(week, 0)))
        for week in range(weeks)
    ]


@dataclass(frozen=True)
class ConnectionRow:
    tenant_id: str
    connection_id: str
    kind: str
    recipient: str
    circuit: str
    """``closed``, ``open``, ``half-open``; ``unknown`` when crm-sync's metrics can't be read."""
    pending: int
    dead: int
    last_delivered_at: datetime | None


async def connection_rows(
    db: AsyncDatabase[Document],
    config_dir: Path,
    tenant_ids: Sequence[str],
    circuits: dict[str, str] | None,
) -> list[ConnectionRow]:
    """Each CRM connection of the tenants with its circuit (``tenant/connection`` ->
    state, from crm-sync's metrics; ``None`` when they could not be read), backlog and last
    delivery."""
    rows = []
    for tenant_id in tenant_ids:
        summary = await crm_sync.outbox_summary(db, tenant_id)
        for connection_id, kind, recipient in crm_sync.connections(config_dir, tenant_id):
            counts = summary.get(connection_id, {})
            rows.append(
                ConnectionRow(
                    tenant_id=tenant_id,
                    connection_id=connection_id,
                    kind=kind,
                    recipient=recipient,
                    circuit="unknown"
                    if circuits is None
                    else circuits.get(f"{tenant_id}/{connection_id}", "closed"),
                    pending=int(counts.get("pending", 0)),
                    dead=int(counts.get("dead", 0)),
                    last_delivered_at=_utc(counts.get("last_delivered_at")),
                )
            )
    return rows


async def erasure_durations(
    db: AsyncDatabase[Document], tenant_ids: Sequence[str]
) -> list[tuple[str, float]]:
    """Completed erasures by time to complete (opened -> last receipt), in bands."""
    bands = [
        ("< 1 s", 1.0),
        ("< 10 s", 10.0),
        ("< 1 min", 60.0),
        ("< 1 h", 3600.0),
        ("< 1 day", 86400.0),
        ("< 30 days", 30 * 86400.0),
        ("later", float("inf")),
    ]
    counts = dict.fromkeys((name for name, _ in bands), 0.0)
    for erasure in await erasure_propagator.erasures(db, tenant_ids, states=("completed",)):
        opened = _utc(erasure.get("opened_at")) or _utc(erasure.get("requested_at"))
        completed = _utc(erasure.get("completed_at"))
        if opened is None or completed is None:
            continue
        seconds = (completed - opened).total_seconds()
        name = next(name for name, limit in bands if seconds < limit)
        counts[name] += 1
    return list(counts.items())
