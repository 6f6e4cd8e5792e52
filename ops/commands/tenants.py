"""``leadtrail tenants`` (add, list, rotate-key) and ``leadtrail topics create``: setting a
cluster up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from contracts import ALL_TOPICS
from ops.commands.support import ConfigDir, fail

__all__ = ["tenants_app", "topics_app"]

tenants_app = typer.Typer(help="Tenants and their API keys (stored as hashes only).")
topics_app = typer.Typer(help="Kafka topics of the cluster.")


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
