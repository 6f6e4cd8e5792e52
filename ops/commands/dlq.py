"""``leadtrail dlq`` (list, redrive): the dead-letter topic."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import typer

from contracts.dead_letter import DeadLetterV1
from ops.commands.support import UNREACHABLE, fail, operator_settings

__all__ = ["dlq_app"]

dlq_app = typer.Typer(help="The dead-letter topic: what failed, and sending it again.")


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

    settings = operator_settings()

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
    except UNREACHABLE as error:
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
def dlq_redrive(
    letter_id: str = typer.Argument(..., help="id from 'leadtrail dlq list'"),
    by: str = typer.Option(
        None, "--by", help="who redrives (recorded in the event; default: cli:<OS user>)"
    ),
) -> None:
    """Send a dead letter's original record to its topic again, for the service that gave up
    on it alone; a crm-sync letter calls again only the CRM connection whose call failed. The
    letter is then handled: `leadtrail dlq list` no longer shows it (`--all` does).
    (Consumers deduplicate by event id, so a record that was meanwhile handled changes nothing.)

    Example: leadtrail dlq redrive 019ad0f2-5e30-7c6d-9043-7dab2e4f9033 --by ops@acme
    """
    import getpass

    from ops.dlq import (
        HANDLED_COLLECTION,
        DeadLetterNotFoundError,
        mark_handled,
        record_redrive,
        redrive,
    )
    from ops.export import open_database
    from ops.operator import operator_publisher

    settings = operator_settings()
    actor = by or f"cli:{getpass.getuser()}"

    async def run() -> DeadLetterV1:
        letter = await redrive(settings.kafka_bootstrap, settings.topic_prefix, letter_id, by=actor)
        async with open_database(settings) as (db, _):
            await mark_handled(db[HANDLED_COLLECTION], letter, datetime.now(UTC), by=actor)
        async with operator_publisher(settings) as publisher:
            await record_redrive(publisher, letter, actor)
        return letter

    try:
        letter = asyncio.run(run())
    except DeadLetterNotFoundError as error:
        raise fail(str(error)) from None
    except UNREACHABLE as error:
        raise fail(f"cannot redrive: {type(error).__name__}: {error}") from None
    what = f"{letter.event_type or 'record'} {letter.event_id or ''}".strip()
    typer.echo(f"redriven to {letter.source_topic}: {what}")
