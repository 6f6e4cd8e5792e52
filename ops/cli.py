"""``leadtrail``: the operator's command line.

Every command has ``--help`` with examples. Errors print one clear line on stderr and exit
non-zero; nothing here prints secrets.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import typer

from contracts import ALL_TOPICS, REGISTRY
from contracts.schemagen import SCHEMA_DIR, render_schemas, write_schemas

__all__ = ["app", "main"]

app = typer.Typer(
    name="leadtrail",
    help="Operate a Leadtrail cluster: contracts, topics, the local stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contracts_app = typer.Typer(help="Event contracts: JSON Schemas and AsyncAPI documents.")
topics_app = typer.Typer(help="Kafka topics of the cluster.")
stack_app = typer.Typer(help="The local stack: Kafka, FerretDB and the five services.")
tenants_app = typer.Typer(help="Tenants and their API keys (stored as hashes only).")
app.add_typer(contracts_app, name="contracts")
app.add_typer(topics_app, name="topics")
app.add_typer(stack_app, name="stack")
app.add_typer(tenants_app, name="tenants")

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


@stack_app.command("up")
def stack_up(
    detach: bool = typer.Option(False, "--detach", help="start and return (stop: stack down)"),
    timeout: float = typer.Option(90.0, help="seconds each part may take to become ready"),
) -> None:
    """Start Kafka, FerretDB, the topics and all five services; Ctrl-C stops everything.

    Prints one line per endpoint and writes .run/stack.env for the other tools.

    Examples: leadtrail stack up | leadtrail stack up --detach && leadtrail stack down
    """
    from ops import stack
    from ops.infra.errors import InfraError
    from ops.infra.paths import default_run_root

    run_root = default_run_root()
    typer.echo("starting Kafka, FerretDB and the services (first run downloads and builds) ...")
    try:
        processes = stack.stack_up(run_root, timeout=timeout)
    except InfraError as error:
        raise fail(str(error)) from None
    for process in processes:
        typer.echo(f"{process.label}: {process.url}")
    env = dict(line.split("=", 1) for line in (run_root / "stack.env").read_text().splitlines())
    typer.echo(f"kafka: {env['LEADTRAIL_KAFKA_BOOTSTRAP']}")
    typer.echo(f"mongodb: {env['LEADTRAIL_MONGO_URL']}")
    typer.echo(f"logs: {run_root / 'logs'}; settings for tools: {run_root / 'stack.env'}")
    if detach:
        typer.echo("running in the background; stop with: make down")
        return
    typer.echo("press Ctrl-C to stop")
    raise typer.Exit(stack.watch(run_root, processes))


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services, then Kafka and FerretDB (data stays in .run/ for the next up).

    Example: leadtrail stack down
    """
    from ops import stack

    stack.stack_down()
    typer.echo("stopped")


@stack_app.command("status")
def stack_status() -> None:
    """Show which services of the local stack run, and where.

    Example: leadtrail stack status
    """
    from ops import stack

    for name, state in stack.stack_status():
        typer.echo(f"{name:20} {state}")


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
