"""The ``leadtrail replay`` command (registered in :mod:`ops.cli`); the work is in
:mod:`ops.replay`."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

    from ops.replay import Lag, ReadModelSpec

    Database = AsyncDatabase[dict[str, Any]]

__all__ = ["replay_command"]

EXIT_DIFFERENT = 1
EXIT_INPUT = 2
EXIT_NOT_CAUGHT_UP = 3
SHOWN_DIFFERENCES = 50


class Exit(Exception):  # noqa: N818 (an outcome, not a failure of this module)
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "events")
        return Text(
            f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed"
        )


@dataclass
class Bar:
    progress: Progress | None
    task: TaskID | None = None

    def plan(self, total: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task("replaying", total=total)

    def writing(self, total: int) -> None:
        """The events are folded: from now on, count the documents written."""
        if self.progress is not None:
            self.task = self.progress.add_task("writing", total=total, unit="documents")

    def advance(self, count: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, count)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Bar]:
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield Bar(None)
        return
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        yield Bar(progress)


def replay_command(  # noqa: PLR0917 (one parameter per option of the command)
    service: str = typer.Option(..., "--service", help="the service whose read models to rebuild"),
    start: str = typer.Option(
        None,
        "--from",
        help="start at this time (ISO 8601) or offset (every partition); default: the beginning",
    ),
    to: str = typer.Option(
        None, "--to", help="stop at this time (ISO 8601): the state as it was then"
    ),
    into: str = typer.Option(
        "rebuilt", "--into", help="suffix of the rebuilt collections: <name>_<suffix>"
    ),
    verify: bool = typer.Option(
        False, "--verify", help="compare rebuilt and live collections; exit 1 if they differ"
    ),
    do_swap: bool = typer.Option(
        False, "--swap", help="then put the rebuilt collections in place of the live ones"
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
    bootstrap: str = typer.Option(
        None, "--bootstrap", envvar="LEADTRAIL_KAFKA_BOOTSTRAP", help="host:port of a broker"
    ),
    mongo_url: str = typer.Option(
        None, "--mongo-url", envvar="LEADTRAIL_MONGO_URL", help="MongoDB or FerretDB URL"
    ),
    mongo_db: str = typer.Option("leadtrail", "--db", envvar="LEADTRAIL_MONGO_DB"),
    topic_prefix: str = typer.Option(
        "leadtrail.", "--topic-prefix", envvar="LEADTRAIL_TOPIC_PREFIX"
    ),
) -> None:
    """Rebuild a service's read models from the topics into <name>_<suffix> collections.

    Reads every topic the service consumes up to the end offsets at the start (or --to), and
    applies each event with the service's own projection code: no event is published, no CRM
    called, no key touched, no live collection written. Operational state (idempotency keys,
    outbox, claims, data keys) is never rebuilt. --verify compares with the live collections
    (once the live consumers have caught up with the same offsets; exit 1 on differences,
    3 when they have not caught up); --swap then renames the rebuilt collections into place.

    Examples:

      leadtrail replay --service consent-ledger --verify

      leadtrail replay --service lead-ingest --into v2 --verify --swap

      leadtrail replay --service retention-scheduler --to 2026-11-01T00:00:00Z --into nov1

      leadtrail replay --service crm-sync --from 2026-11-29T08:00:00Z --into rebuilt
    """
    if importlib.util.find_spec("mongomock") is None:
        typer.secho(
            "error: replay folds events into an in-memory store (mongomock), an optional "
            "dependency: pip install 'leadtrail[replay]'",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(2)
    try:
        asyncio.run(
            _run(
                service=service,
                start_text=start,
                to_text=to,
                suffix=into,
                verify=verify,
                do_swap=do_swap,
                progress=not no_progress,
                bootstrap=bootstrap,
                mongo_url=mongo_url,
                mongo_db=mongo_db,
                topic_prefix=topic_prefix,
            )
        )
    except Exit as outcome:
        typer.secho(f"error: {outcome}", err=True, fg=typer.colors.RED)
        raise typer.Exit(outcome.code) from None


async def _run(  # noqa: PLR0912 (the command's flow, step by step)
    *,
    service: str,
    start_text: str | None,
    to_text: str | None,
    suffix: str,
    verify: bool,
    do_swap: bool,
    progress: bool,
    bootstrap: str | None,
    mongo_url: str | None,
    mongo_db: str,
    topic_prefix: str,
) -> None:
    from aiokafka.errors import KafkaError
    from pymongo import AsyncMongoClient
    from pymongo.errors import PyMongoError

    from ops.replay import (
        ReplayInputError,
        check_suffix,
        consumer_lag,
        replay,
        spec_for,
    )
    from ops.replay_source import check_range, parse_start, parse_time

    try:
        spec = spec_for(service)
        start = parse_start(start_text)
        until = parse_time(to_text) if to_text is not None else None
        check_range(start, until)
        check_suffix(suffix)
    except ReplayInputError as error:
        raise Exit(str(error), EXIT_INPUT) from None
    if until is not None and (verify or do_swap):
        raise Exit(
            "--to rebuilds a past state: it cannot be compared with or swapped for the live "
            "one (drop --verify/--swap)",
            EXIT_INPUT,
        )
    if not bootstrap:
        raise Exit("no broker: pass --bootstrap or set LEADTRAIL_KAFKA_BOOTSTRAP", EXIT_INPUT)
    if not mongo_url:
        raise Exit("no database: pass --mongo-url or set LEADTRAIL_MONGO_URL", EXIT_INPUT)

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        mongo_url, tz_aware=True, serverSelectionTimeoutMS=10_000
    )
    db = client[mongo_db]
    try:
        with progress_bar(progress and sys.stderr.isatty()) as bar:
            result = await replay(
                spec,
                bootstrap=bootstrap,
                topic_prefix=topic_prefix,
                db=db,
                suffix=suffix,
                start=start,
                to=until,
                on_plan=bar.plan,
                on_progress=bar.advance,
                on_write=bar.writing,
            )
        typer.echo(
            f"{spec.name}: {result.read} records read, {result.applied} events applied, "
            f"{result.skipped} not for this service, {result.written} documents written into "
            f"{', '.join(result.collections)} "
            f"in {result.elapsed_s:.1f} s ({result.per_second:,.0f} events/s)"
        )
        for line in result.invalid:
            typer.echo(f"invalid record (dead-lettered live): {line}", err=True)
        for line in result.failed:
            typer.echo(f"projection failed (dead-lettered live): {line}", err=True)
        lags = (
            await consumer_lag(spec, bootstrap, topic_prefix, result.ranges)
            if verify or do_swap
            else []
        )
        past = [lag for lag in lags if lag.committed > lag.end]
        if verify:
            await _verify(spec, db, suffix, lags)
        if do_swap:
            await _swap(spec, db, suffix, failed=len(result.failed), past=bool(past))
        elif result.failed:
            raise Exit(f"{len(result.failed)} event(s) could not be applied", EXIT_DIFFERENT)
    except ReplayInputError as error:
        raise Exit(str(error), EXIT_INPUT) from None
    except KafkaError as error:
        raise Exit(
            f"Kafka at {bootstrap}: {type(error).__name__}: {error}", EXIT_DIFFERENT
        ) from None
    except PyMongoError as error:
        raise Exit(f"database at {mongo_url}: {type(error).__name__}", EXIT_DIFFERENT) from None
    finally:
        await client.close()


async def _verify(spec: ReadModelSpec, db: Database, suffix: str, lags: list[Lag]) -> None:
    from ops.replay import compare

    behind = [lag for lag in lags if lag.committed < lag.end]
    past = [lag for lag in lags if lag.committed > lag.end]
    if behind:
        for lag in behind[:10]:
            typer.echo(f"  {lag}", err=True)
        raise Exit(
            f"the live consumers of {spec.name} have not caught up with the replay's end "
            f"offsets ({len(behind)} partition(s) behind): compare again once they have",
            EXIT_NOT_CAUGHT_UP,
        )
    if past:
        typer.echo(
            f"note: live consumers handled {sum(g.committed - g.end for g in past)} record(s) "
            "newer than the replay read; differences may come from them",
            err=True,
        )
    differences = await compare(spec, db, suffix)
    for difference in differences[:SHOWN_DIFFERENCES]:
        typer.echo(str(difference))
    if differences:
        more = len(differences) - SHOWN_DIFFERENCES
        tail = f" ({more} more not shown)" if more > 0 else ""
        raise Exit(
            f"{len(differences)} difference(s) between live and rebuilt{tail}", EXIT_DIFFERENT
        )
    typer.echo(f"the rebuilt collections equal the live ones ({spec.name})")


async def _swap(spec: ReadModelSpec, db: Database, suffix: str, *, failed: int, past: bool) -> None:
    from ops.replay import SwapError, swap

    if failed:
        raise Exit(f"{failed} event(s) could not be applied: not swapping", EXIT_DIFFERENT)
    if past:
        raise Exit(
            "live consumers are past the replay's end offsets, so the rebuild lacks newer "
            "events: stop the service, replay again, then swap",
            EXIT_DIFFERENT,
        )
    try:
        for line in await swap(spec, db, suffix):
            typer.echo(f"swapped {line}")
    except SwapError as error:
        raise Exit(str(error), EXIT_DIFFERENT) from None
