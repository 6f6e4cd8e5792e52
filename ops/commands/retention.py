"""``leadtrail retention`` (defaults, set) and ``leadtrail holds`` (place, list, release): the
operator's events that change what is kept and for how long."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ops.commands.support import ConfigDir, fail, from_database, known_tenant, publish

__all__ = ["holds_app", "retention_app"]

retention_app = typer.Typer(help="Retention policies per tenant and data category (R15, R16).")
holds_app = typer.Typer(help="Legal holds: suspend expiry and erasure (R18).")


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
    event = publish(
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
        event = publish(
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

    from ops.operator import list_holds
    from services.erasure_propagator.declaration import holds as holds_of

    known_tenant(tenant, config_dir)
    holds = from_database(
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

    known_tenant(tenant, config_dir)
    hold = from_database(
        lambda db, _: hold_to_release(holds_of(db), tenant, hold_id), OperatorError
    )
    subject = hold["subject_id"] if hold["scope"] == "subject" else None
    event = publish(
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
