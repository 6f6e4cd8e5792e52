"""``leadtrail export``: a subject's access package, built on the spot."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ops.commands.support import ConfigDir, fail, from_database, known_tenant

__all__ = ["export"]

OutputFile = typer.Option(None, "--output", "-o", help="write to this file, not stdout")


def export(
    subject: str = typer.Argument(..., help="a subject id (sub_...) or a lead id (lead_...)"),
    tenant: str = typer.Option(..., "--tenant", help="tenant id"),
    fmt: str = typer.Option("json", "--format", help="json, or csv (section,record,field,value)"),
    output: Path | None = OutputFile,
    config_dir: Path = ConfigDir,
) -> None:
    """Write the access/portability package of a subject (R22, R23): personal data, sources,
    purposes and legal bases, consents with proof, retention and due dates, recipients. The
    same package an access request delivers.

    Examples: leadtrail export sub_7f3a9c2e4b1d8a60 --tenant acme |
    leadtrail export lead_019ad0f23c1e7a4b --tenant acme --format csv -o maria.csv
    """
    from ops.export import UnknownSubjectError, build_package
    from services.common.export_package import render

    if fmt not in ("json", "csv"):
        raise fail(f"--format must be json or csv, got {fmt!r}")
    known_tenant(tenant, config_dir)
    package = from_database(
        lambda db, cipher: build_package(db, cipher, config_dir, tenant, subject),
        UnknownSubjectError,
    )
    body = render(package, "csv" if fmt == "csv" else "json")[0]
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        output.write_bytes(body)
        typer.echo(f"wrote {output} ({len(body)} bytes)", err=True)
