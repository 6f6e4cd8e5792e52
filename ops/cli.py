"""``leadtrail``: the operator's command line.

Every command has ``--help`` with examples. Errors print one clear line on stderr and exit
non-zero; nothing here prints secrets.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from aiokafka.errors import KafkaError
from pymongo.errors import PyMongoError

from contracts import ALL_TOPICS, REGISTRY, EventEnvelope
from contracts.dead_letter import DeadLetterV1
from contracts.schemagen import SCHEMA_DIR, render_schemas, write_schemas
from ops.kafka_log import KafkaLogError
from ops.replay_cli import replay_command
from services.common.publisher import EventPublisher
from services.common.settings import CommonSettings

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from services.common.crypto import PiiCipher
    from services.common.store import Document

T = TypeVar("T")

__all__ = ["app", "main"]

app = typer.Typer(
    name="leadtrail",
    help="Operate a Leadtrail cluster: tenants, retention and holds, dead letters, replay, "
    "audit, export, contracts and topics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contracts_app = typer.Typer(help="Event contracts: JSON Schemas and AsyncAPI documents.")
topics_app = typer.Typer(help="Kafka topics of the cluster.")
tenants_app = typer.Typer(help="Tenants and their API keys (stored as hashes only).")
retention_app = typer.Typer(help="Retention policies per tenant and data category (R15, R16).")
holds_app = typer.Typer(help="Legal holds: suspend expiry and erasure (R18).")
dlq_app = typer.Typer(help="The dead-letter topic: what failed, and sending it again.")
app.add_typer(contracts_app, name="contracts")
app.add_typer(topics_app, name="topics")
app.add_typer(tenants_app, name="tenants")
app.add_typer(retention_app, name="retention")
app.add_typer(holds_app, name="holds")
app.add_typer(dlq_app, name="dlq")
app.command("replay")(replay_command)

ConfigDir = typer.Option(
    Path(".run/config"),
    "--config-dir",
    envvar="LEADTRAIL_CONFIG_DIR",
    help="where tenants.json lives (the services read the same directory)",
)


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@contracts_app.command("generate")
def contracts_generate() -> None:
    """Regenerate JSON Schemas, AsyncAPI and OpenAPI documents under contracts/ from the code.

    Example: leadtrail contracts generate && git diff contracts/
    """
    from ops.asyncapi import write_asyncapi
    from ops.openapi import write_openapi

    written = write_schemas(REGISTRY) + write_asyncapi() + write_openapi()
    for path in written:
        typer.echo(f"wrote {path}")
    if not written:
        typer.echo("contracts are up to date")


@contracts_app.command("check")
def contracts_check() -> None:
    """Exit 1 when a checked-in schema or AsyncAPI document differs from the code.

    Example: leadtrail contracts check
    """
    from ops.asyncapi import ASYNCAPI_DIR, render_asyncapi

    stale = [
        str(directory / name)
        for directory, files in (
            (SCHEMA_DIR, render_schemas(REGISTRY)),
            (ASYNCAPI_DIR, render_asyncapi()),
        )
        for name, text in files.items()
        if not (directory / name).exists() or (directory / name).read_text() != text
    ]
    if stale:
        raise fail("out of date: " + ", ".join(stale) + " (run: leadtrail contracts generate)")
    typer.echo("contracts are up to date")


@topics_app.command("create")
def topics_create(
    bootstrap: str = typer.Option(
        None, envvar="LEADTRAIL_KAFKA_BOOTSTRAP", help="host:port of a broker"
    ),
    prefix: str = typer.Option("leadtrail.", envvar="LEADTRAIL_TOPIC_PREFIX"),
    replication_factor: int = typer.Option(1, min=1, help="3 in production"),
) -> None:
    """Create every Leadtrail topic that does not exist yet (idempotent).

    Example: leadtrail topics create --bootstrap 127.0.0.1:9092
    """
    from services.common.topics import ensure_topics

    if not bootstrap:
        raise fail("no broker: pass --bootstrap or set LEADTRAIL_KAFKA_BOOTSTRAP")
    created = asyncio.run(
        ensure_topics(bootstrap, prefix, ALL_TOPICS, replication_factor=replication_factor)
    )
    for name in created:
        typer.echo(f"created {name}")
    typer.echo(f"{len(ALL_TOPICS)} topics present ({len(created)} new)")


@tenants_app.command("add")
def tenants_add(
    name: str = typer.Argument(..., help="display name, e.g. 'Acme Srl'"),
    tenant_id: str = typer.Option(None, "--id", help="tenant id (default: derived from NAME)"),
    region: str = typer.Option(
        None, "--region", help="default phone region, ISO 3166 alpha-2 (e.g. IT)"
    ),
    config_dir: Path = ConfigDir,
) -> None:
    """Create a tenant and print its API key once (only its hash is stored).

    Example: leadtrail tenants add "Acme Srl" --region IT
    """
    from services.common.tenants import TenantDirectory, TenantError

    if region is not None and not (len(region) == 2 and region.isalpha() and region.isupper()):
        raise fail(f"--region must be two upper-case letters, got {region!r}")
    try:
        tenant, key = TenantDirectory(config_dir).add(
            name, tenant_id=tenant_id, default_region=region
        )
    except TenantError as error:
        raise fail(str(error)) from None
    typer.echo(f"tenant: {tenant.id}")
    typer.echo(f"api key: {key}")
    typer.echo("store the key now: it is not shown again", err=True)


@tenants_app.command("list")
def tenants_list(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    config_dir: Path = ConfigDir,
) -> None:
    """List tenants (ids, names, number of active keys); never prints keys.

    Example: leadtrail tenants list --json
    """
    from services.common.tenants import TenantDirectory

    directory = TenantDirectory(config_dir)
    if as_json:
        typer.echo(directory.to_json())
        return
    tenants = directory.all()
    if not tenants:
        typer.echo(f"no tenants in {directory.path}")
    for tenant in tenants:
        typer.echo(
            f"{tenant.id:20} {tenant.name:30} keys={len(tenant.api_keys)} "
            f"region={tenant.default_region or '-'} created={tenant.created_at:%Y-%m-%d}"
        )


@tenants_app.command("rotate-key")
def tenants_rotate_key(
    tenant_id: str = typer.Argument(..., help="the tenant's id"),
    keep_old: bool = typer.Option(
        False, "--keep-old", help="old keys keep working (rotate without downtime)"
    ),
    config_dir: Path = ConfigDir,
) -> None:
    """Issue a new API key for a tenant and print it once; old keys stop working.

    Example: leadtrail tenants rotate-key acme-srl
    """
    from services.common.tenants import TenantDirectory, TenantError

    try:
        _, key = TenantDirectory(config_dir).rotate_key(tenant_id, keep_old=keep_old)
    except TenantError as error:
        raise fail(str(error)) from None
    typer.echo(f"api key: {key}")
    typer.echo("store the key now: it is not shown again", err=True)


def _operator_settings() -> CommonSettings:
    from pydantic import ValidationError

    try:
        return CommonSettings()
    except ValidationError as error:
        missing = ", ".join(f"LEADTRAIL_{str(e['loc'][0]).upper()}" for e in error.errors())
        raise fail(f"no stack settings ({missing}): start one with `make up` or set them") from None


def _publish(action: Callable[[EventPublisher], Awaitable[EventEnvelope]]) -> EventEnvelope:
    from ops.operator import operator_publisher

    async def run() -> EventEnvelope:
        async with operator_publisher(_operator_settings()) as publisher:
            return await asyncio.wait_for(action(publisher), timeout=30)

    try:
        return asyncio.run(run())
    except TimeoutError:
        raise fail("Kafka did not acknowledge within 30 s; nothing was changed") from None


def _from_database(
    read: Callable[[AsyncDatabase[Document], PiiCipher], Awaitable[T]],
    *expected: type[Exception],
) -> T:
    """Run ``read`` on the deployment's database (and keyring); an ``expected`` error, or a
    database that cannot be reached, is one error line and exit 1."""
    from ops.export import open_database

    settings = _operator_settings()

    async def run() -> T:
        async with open_database(settings) as (db, cipher):
            return await read(db, cipher)

    try:
        return asyncio.run(run())
    except expected as error:
        raise fail(str(error)) from None
    except _UNREACHABLE as error:
        raise fail(f"cannot read MongoDB: {type(error).__name__}: {error}") from None


@retention_app.command("defaults")
def retention_defaults(config_dir: Path = ConfigDir) -> None:
    """Show every data category with its default period, anchor and the installation maximum.

    Example: leadtrail retention defaults
    """
    from services.retention_scheduler.declaration import DEFAULTS, load_maximums

    maximums = load_maximums(config_dir)
    typer.echo(f"{'category':26} {'default days':>12} {'maximum':>8}  counted from")
    for name, policy in DEFAULTS.items():
        typer.echo(f"{name:26} {policy.period_days:>12} {maximums[name]:>8}  {policy.anchor}")


@retention_app.command("set")
def retention_set(
    tenant: str = typer.Option(..., "--tenant", help="tenant id"),
    category: str = typer.Option(..., "--category", help="see: leadtrail retention defaults"),
    days: int = typer.Option(..., "--days", min=1, help="the new, shorter period in days"),
    set_by: str = typer.Option(..., "--by", help="who decided (recorded in the event)"),
    config_dir: Path = ConfigDir,
) -> None:
    """Shorten a tenant's retention period for one category; longer than the maximum fails.

    Example: leadtrail retention set --tenant acme --category lead_data --days 365 --by dpo@acme
    """
    from ops.operator import set_policy
    from services.common.tenants import TenantDirectory
    from services.retention_scheduler.declaration import (
        PolicyError,
        load_maximums,
        validate_period,
    )

    if TenantDirectory(config_dir).get(tenant) is None:
        raise fail(f"no tenant {tenant!r} (see: leadtrail tenants list)")
    try:
        validate_period(category, days, load_maximums(config_dir))
    except PolicyError as error:
        raise fail(str(error)) from None
    event = _publish(
        lambda publisher: set_policy(
            publisher,
            config_dir,
            tenant_id=tenant,
            category=category,
            period_days=days,
            set_by=set_by,
        )
    )
    typer.echo(f"retention of {category} for {tenant}: {days} days (event {event.id})")


@holds_app.command("place")
def holds_place(
    tenant: str = typer.Option(..., "--tenant", help="tenant id"),
    subject: str = typer.Option(
        None, "--subject", help="subject id; without it the hold covers the whole tenant"
    ),
    reason: str = typer.Option(..., "--reason", help="e.g. the case number"),
    placed_by: str = typer.Option(..., "--by", help="who placed it"),
    config_dir: Path = ConfigDir,
) -> None:
    """Place a legal hold: nothing in scope expires or is erased until it is released.

    Example: leadtrail holds place --tenant acme --subject sub_123 --reason "Case 118" --by legal
    """
    from ops.operator import OperatorError, place_hold
    from services.common.tenants import TenantDirectory

    if TenantDirectory(config_dir).get(tenant) is None:
        raise fail(f"no tenant {tenant!r} (see: leadtrail tenants list)")
    try:
        event = _publish(
            lambda publisher: place_hold(
                publisher,
                tenant_id=tenant,
                subject_id=subject,
                reason=reason,
                placed_by=placed_by,
            )
        )
    except OperatorError as error:
        raise fail(str(error)) from None
    typer.echo(f"hold {event.data['hold_id']} placed on {subject or 'the whole tenant ' + tenant}")


@holds_app.command("list")
def holds_list(
    tenant: str = typer.Option(..., "--tenant", help="tenant id"),
    include_released: bool = typer.Option(False, "--all", help="released holds too"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    config_dir: Path = ConfigDir,
) -> None:
    """List a tenant's legal holds in force (with --all, the released ones too).

    Examples: leadtrail holds list --tenant acme | leadtrail holds list --tenant acme --all --json
    """
    import json

    from ops.operator import list_holds
    from services.erasure_propagator.declaration import holds as holds_of

    _known_tenant(tenant, config_dir)
    holds = _from_database(
        lambda db, _: list_holds(holds_of(db), tenant, include_released=include_released)
    )
    for hold in holds:
        view = {
            "hold_id": hold["_id"],
            "active": hold.get("active"),
            "scope": hold.get("scope"),
            "subject_id": hold.get("subject_id"),
            "reason": hold.get("reason"),
        }
        if as_json:
            typer.echo(json.dumps(view))
        else:
            state = "active" if view["active"] else "released"
            covers = view["subject_id"] or "whole tenant"
            typer.echo(f"{view['hold_id']}  {state:8}  {covers:28}  {view['reason'] or ''}")
    if not holds and not as_json:
        typer.echo(f"no {'' if include_released else 'active '}holds in {tenant}", err=True)


@holds_app.command("release")
def holds_release(
    hold_id: str = typer.Argument(..., help="the id printed by 'holds place' or 'holds list'"),
    tenant: str = typer.Option(..., "--tenant", help="tenant id"),
    released_by: str = typer.Option(..., "--by", help="who released it"),
    reason: str = typer.Option(None, "--reason"),
    config_dir: Path = ConfigDir,
) -> None:
    """Release a legal hold; erasures it deferred run now. The hold must be known and active:
    a mistyped id is an error, not a release of nothing.

    Example: leadtrail holds release hold_0a1b2c3d4e5f6071 --tenant acme --by legal
    """
    from ops.operator import OperatorError, hold_to_release, release_hold
    from services.erasure_propagator.declaration import holds as holds_of

    _known_tenant(tenant, config_dir)
    hold = _from_database(
        lambda db, _: hold_to_release(holds_of(db), tenant, hold_id), OperatorError
    )
    subject = hold["subject_id"] if hold["scope"] == "subject" else None
    event = _publish(
        lambda publisher: release_hold(
            publisher,
            tenant_id=tenant,
            subject_id=str(subject) if subject else None,
            hold_id=hold_id,
            released_by=released_by,
            reason=reason,
        )
    )
    covered = subject or "the whole tenant " + tenant
    typer.echo(f"hold {hold_id} released on {covered} (event {event.id})")


@dlq_app.command("list")
def dlq_list(
    service: str = typer.Option(None, "--service", help="only this service's dead letters"),
    show_all: bool = typer.Option(
        False, "--all", help="also the handled ones (redriven), marked as such"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """List the dead letters not handled yet: when, which service, where from, the error.
    A letter sent again with `leadtrail dlq redrive` is handled: hidden, or with `--all`
    shown as "redriven <time>" (`"redriven_at"` in `--json`).

    Example: leadtrail dlq list --service crm-sync
    """
    from ops.dlq import HANDLED_COLLECTION, handled_letters, read_dead_letters
    from ops.export import open_database

    settings = _operator_settings()

    async def collect() -> tuple[list[DeadLetterV1], dict[str, datetime]]:
        async with open_database(settings) as (db, _):
            handled = await handled_letters(db[HANDLED_COLLECTION])
        letters = [
            letter
            async for letter in read_dead_letters(settings.kafka_bootstrap, settings.topic_prefix)
            if (service is None or letter.service == service)
            and (show_all or letter.id not in handled)
        ]
        return letters, handled

    try:
        letters, handled = asyncio.run(collect())
    except _UNREACHABLE as error:
        raise fail(f"cannot read the dead letters: {type(error).__name__}: {error}") from None
    for letter in letters:
        redriven_at = handled.get(letter.id)
        if as_json:
            row = letter.model_dump(mode="json")
            row["redriven_at"] = redriven_at.isoformat() if redriven_at else None
            typer.echo(json.dumps(row))
        else:
            state = f"redriven {redriven_at:%Y-%m-%d %H:%M:%S}" if redriven_at else "open"
            typer.echo(
                f"{letter.id}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  {letter.service:20} "
                f"{letter.event_type or '-':28} {state:28} "
                f"{letter.error_type}: {letter.error_message[:80]}"
            )
    if not as_json:
        hidden = "" if show_all else " not handled (--all: every one)"
        typer.echo(f"{len(letters)} dead letter(s){hidden}", err=True)


@dlq_app.command("redrive")
def dlq_redrive(letter_id: str = typer.Argument(..., help="id from 'leadtrail dlq list'")) -> None:
    """Send a dead letter's original record to its topic again, for the service that gave up
    on it alone; a crm-sync letter calls again only the CRM connection whose call failed. The
    letter is then handled: `leadtrail dlq list` no longer shows it (`--all` does).
    (Consumers deduplicate by event id, so a record that was meanwhile handled changes nothing.)

    Example: leadtrail dlq redrive 019ad0f2-5e30-7c6d-9043-7dab2e4f9033
    """
    from ops.dlq import HANDLED_COLLECTION, DeadLetterNotFoundError, mark_handled, redrive
    from ops.export import open_database

    settings = _operator_settings()

    async def run() -> DeadLetterV1:
        letter = await redrive(settings.kafka_bootstrap, settings.topic_prefix, letter_id)
        async with open_database(settings) as (db, _):
            await mark_handled(db[HANDLED_COLLECTION], letter, datetime.now(UTC))
        return letter

    try:
        letter = asyncio.run(run())
    except DeadLetterNotFoundError as error:
        raise fail(str(error)) from None
    except _UNREACHABLE as error:
        raise fail(f"cannot redrive: {type(error).__name__}: {error}") from None
    what = f"{letter.event_type or 'record'} {letter.event_id or ''}".strip()
    typer.echo(f"redriven to {letter.source_topic}: {what}")


_UNREACHABLE = (KafkaError, KafkaLogError, PyMongoError, OSError)


def _known_tenant(tenant: str, config_dir: Path) -> None:
    from services.common.tenants import TenantDirectory

    if TenantDirectory(config_dir).get(tenant) is None:
        raise fail(f"no tenant {tenant!r} (see: leadtrail tenants list)")


@app.command("audit")
def audit(
    subject: str = typer.Argument(..., help="a subject id (sub_...) or a lead id (lead_...)"),
    tenant: str = typer.Option(..., "--tenant", help="tenant id"),
    as_json: bool = typer.Option(False, "--json", help="one JSON document instead of a table"),
    config_dir: Path = ConfigDir,
) -> None:
    """Print the whole lifecycle of a subject (or a lead's subject) from the log: every event
    with time, type, version, producer, cause, non-personal facts and the personal data,
    decrypted, or "erased" where the subject's key was destroyed (R34).

    Examples: leadtrail audit sub_7f3a9c2e4b1d8a60 --tenant acme |
    leadtrail audit lead_019ad0f23c1e7a4b --tenant acme --json > timeline.json
    """
    import json

    from rich.console import Console
    from rich.progress import Progress

    from ops.audit import AuditError, render_table, subject_timeline

    _known_tenant(tenant, config_dir)
    settings = _operator_settings()
    errors = Console(stderr=True)
    with Progress(console=errors, transient=True, disable=not errors.is_terminal) as bar:
        task = bar.add_task("reading the topics", total=None)
        try:
            subject_id, entries = asyncio.run(
                subject_timeline(
                    settings,
                    tenant,
                    subject,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            )
        except AuditError as error:
            raise fail(str(error)) from None
        except _UNREACHABLE as error:
            raise fail(f"cannot read Kafka or MongoDB: {type(error).__name__}: {error}") from None
    if as_json:
        timeline = {"tenant_id": tenant, "subject_id": subject_id, "events": entries}
        typer.echo(json.dumps(timeline, default=lambda e: e.to_json(), indent=2))
    else:
        render_table(Console(width=220), tenant, subject_id, entries)


OutputFile = typer.Option(None, "--output", "-o", help="write to this file, not stdout")


@app.command("export")
def export(
    subject: str = typer.Argument(..., help="a subject id (sub_...) or a lead id (lead_...)"),
    tenant: str = typer.Option(..., "--tenant", help="tenant id"),
    fmt: str = typer.Option("json", "--format", help="json, or csv (section,record,field,value)"),
    output: Path | None = OutputFile,
    config_dir: Path = ConfigDir,
) -> None:
    """Write the access/portability package of a subject (R22, R23): personal data, sources,
    purposes and legal bases, consents with proof, retention and due dates, recipients. The
    same package an access request delivers.

    Examples: leadtrail export sub_7f3a9c2e4b1d8a60 --tenant acme |
    leadtrail export lead_019ad0f23c1e7a4b --tenant acme --format csv -o maria.csv
    """
    from ops.export import UnknownSubjectError, build_package
    from services.common.export_package import render

    if fmt not in ("json", "csv"):
        raise fail(f"--format must be json or csv, got {fmt!r}")
    _known_tenant(tenant, config_dir)
    package = _from_database(
        lambda db, cipher: build_package(db, cipher, config_dir, tenant, subject),
        UnknownSubjectError,
    )
    body = render(package, "csv" if fmt == "csv" else "json")[0]
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        output.write_bytes(body)
        typer.echo(f"wrote {output} ({len(body)} bytes)", err=True)


@app.command("verify")
def verify(
    tenant: str = typer.Option(None, "--tenant", help="report only what concerns this tenant"),
    topics: Annotated[
        list[str] | None, typer.Option("--topic", help="only this topic (repeatable)")
    ] = None,
    as_json: bool = typer.Option(False, "--json", help="machine-readable report"),
    config_dir: Path = ConfigDir,
) -> None:
    """Check the event log's tamper evidence: every event's MAC, and each producer chain for
    gaps, reordering, conflicting duplicates and broken links (docs/integrity.md).

    Exit 0: clean; 1: findings (one line each, with topic/partition@offset); 2: usage error.

    Examples: leadtrail verify | leadtrail verify --tenant acme-srl --topic lead-events --json
    """
    from ops.verify import run_verify

    raise typer.Exit(
        run_verify(tenant=tenant, topics=topics or [], as_json=as_json, config_dir=config_dir)
    )


def load_stack_env(run_root: Path = Path(".run")) -> None:
    """Let commands find a stack started by ``make up`` unless the environment says otherwise."""
    for path in (run_root / "stack.env", run_root / "secrets.env"):
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("LEADTRAIL_"):
                os.environ.setdefault(key, value)


def main() -> None:
    load_stack_env()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except (*_UNREACHABLE, TimeoutError) as error:
        # Whatever command met it: Kafka or the store did not answer within its deadline.
        typer.secho(
            f"error: Kafka or the store did not answer: {type(error).__name__}: {error}",
            err=True,
            fg=typer.colors.RED,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
