"""AsyncAPI documents of the services, generated from their FastStream subscribers.

One document per service, in ``contracts/asyncapi/<service>.asyncapi.json``; checked in, and a
contract test fails when a service's subscriptions change without regenerating them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from faststream.specification import AsyncAPI
from pydantic import SecretStr

from services import declarations
from services.common.consumer import subscribe_all
from services.common.declaration import ServiceDeclaration
from services.common.runtime import Runtime
from services.common.settings import CommonSettings

__all__ = ["ASYNCAPI_DIR", "documentation_settings", "render_asyncapi", "write_asyncapi"]

ASYNCAPI_DIR = Path(__file__).resolve().parent.parent / "contracts" / "asyncapi"

_DOCUMENTATION_KEY = SecretStr(base64.b64encode(bytes(32)).decode())


def documentation_settings(declaration: ServiceDeclaration[Any, Any]) -> CommonSettings:
    """The service's settings with placeholder keys: for documentation only."""
    settings: CommonSettings = declaration.settings.model_construct(
        kafka_bootstrap="kafka:9092",
        kek=_DOCUMENTATION_KEY,
        blind_index_key=_DOCUMENTATION_KEY,
        unsubscribe_key=_DOCUMENTATION_KEY,
    )
    return settings


def subscribed_broker(declaration: ServiceDeclaration[Any, Any]) -> tuple[Runtime, CommonSettings]:
    """A runtime whose broker has the service's subscribers registered, as live (with
    placeholder settings and handlers bound to nothing): connects to nothing."""
    settings = documentation_settings(declaration)
    runtime = Runtime.build(declaration.name, settings)
    subscribe_all(
        runtime,
        settings,
        service=declaration.name,
        subscriptions=declaration.subscriptions,
        handlers=None,
    )
    return runtime, settings


def render_asyncapi() -> dict[str, str]:
    """File name -> document text, one per service. Connects to nothing."""
    files = {}
    for declaration in declarations():
        runtime, _ = subscribed_broker(declaration)
        document = AsyncAPI(
            runtime.broker,
            title=f"Leadtrail {declaration.name}",
            version="0.1.0",
            description=f"Kafka subscriptions of the {declaration.name} service.",
        ).to_specification()
        files[f"{declaration.name}.asyncapi.json"] = (
            json.dumps(document.to_jsonable(), indent=2, sort_keys=True) + "\n"
        )
    return files


def write_asyncapi(directory: Path = ASYNCAPI_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_asyncapi().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    return written
