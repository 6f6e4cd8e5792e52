"""Console accounts (scrypt hashes, roles, the CLI) and sessions (expiry, CSRF)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from console.accounts import (
    Account,
    AccountDirectory,
    AccountError,
    hash_password,
    verify_password,
)
from console.sessions import SessionStore
from ops.cli import app
from services.common.tenants import TenantDirectory

runner = CliRunner()


def test_a_password_is_kept_only_as_its_scrypt_hash(tmp_path: Path) -> None:
    accounts = AccountDirectory(tmp_path)
    account, password = accounts.add("dpo@acme.test", "dpo", "acme")

    stored = json.loads(accounts.path.read_text())["accounts"]["dpo@acme.test"]
    assert password not in accounts.path.read_text()
    assert stored["password"].startswith("scrypt$32768$8$1$")
    assert stat.S_IMODE(accounts.path.stat().st_mode) == 0o600
    assert accounts.authenticate("dpo@acme.test", password) == account
    assert accounts.authenticate("dpo@acme.test", password + "x") is None
    assert accounts.authenticate("nobody@acme.test", password) is None


def test_the_same_password_hashes_differently_each_time() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second
    assert verify_password("correct horse", first)
    assert verify_password("correct horse", second)
    assert not verify_password("correct horse", "md5$whatever")


def test_roles_and_tenants(tmp_path: Path) -> None:
    accounts = AccountDirectory(tmp_path)
    with pytest.raises(AccountError, match="needs --tenant"):
        accounts.add("dpo@acme.test", "dpo", None)
    with pytest.raises(AccountError, match="takes none"):
        accounts.add("ops@x.test", "operator", "acme")
    with pytest.raises(AccountError, match="account id"):
        accounts.add("Has Spaces", "operator", None)
    operator, _ = accounts.add("ops@x.test", "operator", None)
    dpo, _ = accounts.add("dpo@acme.test", "dpo", "acme")
    assert operator.sees("acme")
    assert operator.sees("globex")
    assert dpo.sees("acme")
    assert not dpo.sees("globex")
    assert dpo.actor == "console:dpo@acme.test"
    with pytest.raises(AccountError, match="exists"):
        accounts.add("dpo@acme.test", "dpo", "acme")
    accounts.remove("dpo@acme.test")
    assert accounts.get("dpo@acme.test") is None
    with pytest.raises(AccountError, match="no account"):
        accounts.remove("dpo@acme.test")


def test_a_session_expires_when_idle_and_checks_its_csrf_token() -> None:
    now = [0.0]
    sessions = SessionStore(ttl_s=60, now=lambda: now[0])
    account = Account("ops@x.test", "operator", None, datetime.now(UTC))
    session_id, session = sessions.open(account)
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok("forged")
    assert not session.csrf_ok(None)
    now[0] = 59
    assert sessions.get(session_id) is session  # a request renews it
    now[0] = 118
    assert sessions.get(session_id) is session
    now[0] = 179
    assert sessions.get(session_id) is None
    other_id, _ = sessions.open(account)
    sessions.close_account("ops@x.test")
    assert sessions.get(other_id) is None


def test_the_cli_creates_lists_and_removes_accounts(tmp_path: Path) -> None:
    TenantDirectory(tmp_path).add("Acme", tenant_id="acme")
    config = ["--config-dir", str(tmp_path)]
    dpo = ["console", "add-account", "DPO@acme.test", "--role", "dpo", "--tenant", "acme"]
    added = runner.invoke(app, [*dpo, *config])
    assert added.exit_code == 0, added.output
    password = added.stdout.split("password: ")[1].strip()
    assert AccountDirectory(tmp_path).authenticate("dpo@acme.test", password) is not None

    listed = runner.invoke(app, ["console", "list-accounts", *config])
    assert "dpo@acme.test" in listed.stdout
    assert password not in listed.stdout

    unknown = runner.invoke(
        app, ["console", "add-account", "x@y.test", "--role", "dpo", "--tenant", "nope", *config]
    )
    assert unknown.exit_code == 1
    assert "no tenant 'nope'" in unknown.stderr
    admin = ["console", "add-account", "x@y.test", "--role", "admin"]
    bad_role = runner.invoke(app, [*admin, *config])
    assert bad_role.exit_code == 1
    assert "--role must be operator or dpo" in bad_role.stderr

    removed = runner.invoke(app, ["console", "remove-account", "dpo@acme.test", *config])
    assert removed.exit_code == 0
    again = runner.invoke(app, ["console", "remove-account", "dpo@acme.test", *config])
    assert again.exit_code == 1
