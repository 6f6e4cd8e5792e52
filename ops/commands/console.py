"""``leadtrail console`` (add-account, list-accounts, remove-account): who may log in to the
privacy operations console, and what they see."""

from __future__ import annotations

from pathlib import Path

import typer

from ops.commands.support import ConfigDir, fail, known_tenant

__all__ = ["console_app"]

console_app = typer.Typer(
    help="Accounts of the privacy operations console: operators and tenants' DPOs."
)


@console_app.command("add-account")
def add_account(
    account_id: str = typer.Argument(..., help="the login, e.g. dpo@acme.example"),
    role: str = typer.Option(..., "--role", help="operator (every tenant) or dpo (one tenant)"),
    tenant: str = typer.Option(None, "--tenant", help="the DPO's tenant (dpo only)"),
    config_dir: Path = ConfigDir,
) -> None:
    """Create a console account and print its password once (only a scrypt hash is stored).

    Examples: leadtrail console add-account dpo@acme.example --role dpo --tenant acme |
    leadtrail console add-account ops@leadtrail.example --role operator
    """
    from console.accounts import AccountDirectory, AccountError

    if role not in ("operator", "dpo"):
        raise fail(f"--role must be operator or dpo, got {role!r}")
    if tenant is not None:
        known_tenant(tenant, config_dir)
    try:
        account, password = AccountDirectory(config_dir).add(
            account_id.strip().lower(), "operator" if role == "operator" else "dpo", tenant
        )
    except AccountError as error:
        raise fail(str(error)) from None
    typer.echo(f"account: {account.id} ({account.role}{f' of {tenant}' if tenant else ''})")
    typer.echo(f"password: {password}")
    typer.echo("store the password now: it is not shown again", err=True)


@console_app.command("list-accounts")
def list_accounts(config_dir: Path = ConfigDir) -> None:
    """List console accounts (never their passwords).

    Example: leadtrail console list-accounts
    """
    from console.accounts import AccountDirectory

    accounts = AccountDirectory(config_dir).all()
    if not accounts:
        typer.echo("no console accounts", err=True)
    for account in accounts:
        scope = account.tenant_id or "every tenant"
        created = f"{account.created_at:%Y-%m-%d}"
        typer.echo(f"{account.id:40} {account.role:9} {scope:20} created {created}")


@console_app.command("remove-account")
def remove_account(
    account_id: str = typer.Argument(..., help="the login to remove"),
    config_dir: Path = ConfigDir,
) -> None:
    """Remove a console account; its sessions end at their next request.

    Example: leadtrail console remove-account dpo@acme.example
    """
    from console.accounts import AccountDirectory, AccountError

    try:
        AccountDirectory(config_dir).remove(account_id.strip().lower())
    except AccountError as error:
        raise fail(str(error)) from None
    typer.echo(f"removed {account_id}")
