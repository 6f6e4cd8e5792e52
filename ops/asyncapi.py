"""AsyncAPI documents of the services, generated from their FastStream subscribers.

One document per service, in ``contracts/asyncapi/<service>.asyncapi.json``; checked in, and a
contract test fails when a service's subscriptions change without regenerating them.
"""

from __future__ import annotations

import base64
import importlib
import json
from pathlib import Path

from faststream.specification import AsyncAPI
from pydantic import SecretStr

from services.common.runtime import Runtime, ServiceSpec
from services.common.settings import CommonSettings

__all__ = ["ASYNCAPI_DIR", "render_asyncapi", "service_specs", "write_asyncapi"]

ASYNCAPI_DIR = Path(__file__).resolve().parent.parent / "contracts" / "asyncapi"


SERVICE_APPS = (
    "services.lead_ingest.app",
    "services.consent_ledger.app",
    "services.retention_scheduler.app",
    "services.erasure_propagator.app",
    "services.crm_sync.app",
)
_DOCUMENTATION_KEY = SecretStr(base64.b64encode(bytes(32)).decode())


def service_specs() -> list[tuple[ServiceSpec, CommonSettings]]:
    """Each service's spec, built with placeholder settings: for documentation only."""
    built = []
    for module_name in SERVICE_APPS:
        module = importlib.import_module(module_name)
        settings = module.SETTINGS_CLASS.model_construct(
            kafka_bootstrap="kafka:9092",
            kek=_DOCUMENTATION_KEY,
            blind_index_key=_DOCUMENTATION_KEY,
            unsubscribe_key=_DOCUMENTATION_KEY,
        )
        built.append((module.build_spec(settings), settings))
    return built


def render_asyncapi() -> dict[str, str]:
    """File name -> document text, one per service. Connects to nothing."""
    files = {}
    for spec, settings in service_specs():
        runtime = Runtime.build(spec.name, settings)
        spec.register(runtime)
        document = AsyncAPI(
            runtime.broker,
            title=f"Leadtrail {spec.name}",
            version="0.1.0",
            description=f"Kafka subscriptions of the {spec.name} service.",
        ).to_specification()
        files[f"{spec.name}.asyncapi.json"] = (
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
