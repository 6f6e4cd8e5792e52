"""``leadtrail audit``: a subject's timeline across every topic, decrypted where its key
still exists."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from ops.commands.support import UNREACHABLE, ConfigDir, fail, known_tenant, operator_settings

__all__ = ["audit"]


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

    from rich.console import Console
    from rich.progress import Progress

    from ops.audit import AuditError, render_table, subject_timeline

    known_tenant(tenant, config_dir)
    settings = operator_settings()
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
        except UNREACHABLE as error:
            raise fail(f"cannot read Kafka or MongoDB: {type(error).__name__}: {error}") from None
    if as_json:
        timeline = {"tenant_id": tenant, "subject_id": subject_id, "events": entries}
        typer.echo(json.dumps(timeline, default=lambda e: e.to_json(), indent=2))
    else:
        render_table(Console(width=220), tenant, subject_id, entries)
