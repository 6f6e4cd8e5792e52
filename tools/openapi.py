"""OpenAPI documents of the services with an HTTP API, generated from their FastAPI apps.

Checked in under ``contracts/openapi/<service>.openapi.json``; a contract test fails when an
API changes without regenerating them, and the schemathesis run tests the live service against
the checked-in document.
"""

from __future__ import annotations

import json
from pathlib import Path

from services import declarations
from services.common.runtime import built_service, create_app
from tools.asyncapi import documentation_settings

__all__ = ["OPENAPI_DIR", "render_openapi", "write_openapi"]

OPENAPI_DIR = Path(__file__).resolve().parent.parent / "contracts" / "openapi"


def render_openapi() -> dict[str, str]:
    """File name -> document, for every service whose API goes beyond the health probes."""
    files = {}
    for declaration in declarations():
        app = create_app(declaration, documentation_settings(declaration))
        if not built_service(app).routers:
            continue  # health and metrics only
        document = app.openapi()
        files[f"{declaration.name}.openapi.json"] = (
            json.dumps(document, indent=2, sort_keys=True) + "\n"
        )
    return files


def write_openapi(directory: Path = OPENAPI_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_openapi().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written
