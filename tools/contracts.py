"""``python -m tools.contracts generate | check``: the checked-in contract documents.

``contracts/schemas`` (JSON Schemas of every event version), ``contracts/asyncapi`` (each
service's subscriptions) and ``contracts/openapi`` (each HTTP API) are generated from the code.
``generate`` rewrites the ones that changed; ``check`` exits 1 when one is out of date (the
contract tests check the same).
"""

from __future__ import annotations

import typer

from contracts import REGISTRY
from contracts.schemagen import SCHEMA_DIR, render_schemas, write_schemas
from tools.asyncapi import ASYNCAPI_DIR, render_asyncapi, write_asyncapi
from tools.openapi import OPENAPI_DIR, render_openapi, write_openapi

__all__ = ["app"]

app = typer.Typer(
    name="contracts",
    help="Event contracts: JSON Schemas, AsyncAPI and OpenAPI documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command("generate")
def generate() -> None:
    """Regenerate JSON Schemas, AsyncAPI and OpenAPI documents under contracts/ from the code.

    Example: python -m tools.contracts generate && git diff contracts/
    """
    written = write_schemas(REGISTRY) + write_asyncapi() + write_openapi()
    for path in written:
        typer.echo(f"wrote {path}")
    if not written:
        typer.echo("contracts are up to date")


@app.command("check")
def check() -> None:
    """Exit 1 when a checked-in schema, AsyncAPI or OpenAPI document differs from the code.

    Example: python -m tools.contracts check
    """
    stale = [
        str(directory / name)
        for directory, files in (
            (SCHEMA_DIR, render_schemas(REGISTRY)),
            (ASYNCAPI_DIR, render_asyncapi()),
            (OPENAPI_DIR, render_openapi()),
        )
        for name, text in files.items()
        if not (directory / name).exists() or (directory / name).read_text() != text
    ]
    if stale:
        typer.secho(
            "error: out of date: "
            + ", ".join(stale)
            + " (run: python -m tools.contracts generate)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    typer.echo("contracts are up to date")


if __name__ == "__main__":
    app()
