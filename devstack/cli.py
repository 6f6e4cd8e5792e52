"""``python -m devstack``: the local development stack behind ``make up``, ``make down`` and
``make status``.

``up``/``down``/``status`` run the whole stack (Kafka, the store, the topics and the five
services); ``servers ...`` manages only Kafka and the MongoDB-wire store
(:mod:`devstack.servers_cli`, what ``deploy/local/*.sh`` call). Errors print one ``error:``
line on stderr and exit non-zero.
"""

from __future__ import annotations

import typer

from devstack import stack
from devstack.errors import InfraError
from devstack.paths import default_run_root
from devstack.servers_cli import app as servers_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="devstack",
    help="The local Leadtrail stack: Kafka, the MongoDB-wire store and the five services. "
    "For development and tests only: not part of the package or the image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(servers_app, name="servers", help="Only Kafka and the store: start, stop, status.")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


@app.command("up")
def up(
    detach: bool = typer.Option(False, "--detach", help="start and return (stop: make down)"),
    timeout: float = typer.Option(90.0, help="seconds each part may take to become ready"),
) -> None:
    """Start Kafka, the store, the topics, all five services and the console; Ctrl-C stops
    everything.

    Prints one line per endpoint and writes .run/stack.env for the other tools.

    Examples: make up | make up DETACH=1 && make down
    """
    run_root = default_run_root()
    typer.echo("starting Kafka, the store and the services (the first run downloads jars) ...")
    try:
        processes = stack.stack_up(run_root, timeout=timeout)
    except InfraError as error:
        raise fail(str(error)) from None
    for process in processes:
        typer.echo(f"{process.name}: {process.url}")
    env = dict(line.split("=", 1) for line in (run_root / "stack.env").read_text().splitlines())
    typer.echo(f"kafka: {env['LEADTRAIL_KAFKA_BOOTSTRAP']}")
    typer.echo(f"mongodb: {env['LEADTRAIL_MONGO_URL']}")
    typer.echo(f"logs: {run_root / 'logs'}; settings for tools: {run_root / 'stack.env'}")
    typer.echo(
        "console accounts: .venv/bin/leadtrail console add-account you@example.org --role operator"
    )
    if detach:
        typer.echo("running in the background; stop with: make down")
        return
    typer.echo("press Ctrl-C to stop")
    raise typer.Exit(stack.watch(run_root, processes))


@app.command("down")
def down() -> None:
    """Stop the services, then Kafka and the store (data stays in .run/ for the next up).

    Example: make down
    """
    stack.stack_down()
    typer.echo("stopped")


@app.command("status")
def status() -> None:
    """Show which services of the local stack run, and where.

    Example: make status
    """
    for name, state in stack.stack_status():
        typer.echo(f"{name:20} {state}")


def main() -> None:
    """Entry point of ``python -m devstack``."""
    app(prog_name="python -m devstack")
