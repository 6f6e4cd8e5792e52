"""``leadtrail verify``: check the integrity seals of the log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ops.commands.support import ConfigDir

__all__ = ["verify"]


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
