"""``python -m console``: serve the privacy operations console.

Binds ``LEADTRAIL_HTTP_HOST:LEADTRAIL_HTTP_PORT`` (0 picks a free port) and logs one
``listening`` line with the URL, as the services do.
"""

from __future__ import annotations

import asyncio

import uvicorn
from pydantic import ValidationError

from console.app import create_console_app
from console.settings import ConsoleSettings
from services.common.logging import configure_logging, get_logger
from services.common.runner import listen


def main() -> None:
    try:
        settings = ConsoleSettings()
    except ValidationError as error:
        configure_logging("console")
        get_logger("console").error(
            "invalid configuration",
            errors=[
                {"setting": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in error.errors(include_input=False, include_url=False)
            ],
        )
        raise SystemExit(2) from None
    listener, settings = listen(settings)
    app = create_console_app(settings)
    host, port = listener.getsockname()[:2]
    get_logger("console").info("listening", url=f"http://{host}:{port}")
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=10
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=[listener]))


if __name__ == "__main__":
    main()
