"""AsyncAPI documents of the services, generated from their FastStream subscribers.

One document per service, in ``contracts/asyncapi/<service>.asyncapi.json``; checked in, and a
contract test fails when a service's subscriptions change without regenerating them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from faststream.specification import AsyncAPI

from services.common.runtime import Runtime, ServiceSpec
from services.common.settings import CommonSettings

__all__ = ["ASYNCAPI_DIR", "render_asyncapi", "service_specs", "write_asyncapi"]

ASYNCAPI_DIR = Path(__file__).resolve().parent.parent / "contracts" / "asyncapi"


def service_specs() -> list[ServiceSpec]:
    from services.consent_ledger.app import build_spec as consent_ledger
    from services.crm_sync.app import build_spec as crm_sync
    from services.erasure_propagator.app import build_spec as erasure_propagator
    from services.lead_ingest.app import build_spec as lead_ingest
    from services.retention_scheduler.app import build_spec as retention_scheduler

    return [
        lead_ingest(),
        consent_ledger(),
        retention_scheduler(),
        erasure_propagator(),
        crm_sync(),
    ]


def render_asyncapi() -> dict[str, str]:
    """File name -> document text, one per service. Connects to nothing."""
    documentation_settings = CommonSettings(
        kafka_bootstrap="kafka:9092",
        kek=base64.b64encode(bytes(32)).decode(),
    )
    files = {}
    for spec in service_specs():
        runtime = Runtime.build(spec.name, documentation_settings)
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
