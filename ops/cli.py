"""``leadtrail``: the operator's command line.

Every command has ``--help`` with examples. Errors print one clear line on stderr and exit
non-zero; nothing here prints secrets. One module per command group under
:mod:`ops.commands`; what they share is in :mod:`ops.commands.support`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ops.commands.audit import audit
from ops.commands.console import console_app
from ops.commands.dlq import dlq_app
from ops.commands.export import export
from ops.commands.replay import replay_command
from ops.commands.retention import holds_app, retention_app
from ops.commands.support import UNREACHABLE
from ops.commands.tenants import tenants_app, topics_app
from ops.commands.verify import verify

__all__ = ["app", "main"]

app = typer.Typer(
    name="leadtrail",
    help="Operate a Leadtrail cluster: tenants, retention and holds, dead letters, replay, "
    "audit, export, verify, topics and console accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(topics_app, name="topics")
app.add_typer(tenants_app, name="tenants")
app.add_typer(retention_app, name="retention")
app.add_typer(holds_app, name="holds")
app.add_typer(dlq_app, name="dlq")
app.add_typer(console_app, name="console")
app.command("replay")(replay_command)
app.command("audit")(audit)
app.command("export")(export)
app.command("verify")(verify)


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
    except (*UNREACHABLE, TimeoutError) as error:
        # Whatever command met it: Kafka or the store did not answer within its deadline.
        typer.secho(
            f"error: Kafka or the store did not answer: {type(error).__name__}: {error}",
            err=True,
            fg=typer.colors.RED,
        )
        sys.exit(1)
