"""Process entry point shared by the services: ``python -m services.<name>``.

Binds the HTTP listener on ``LEADTRAIL_HTTP_HOST:LEADTRAIL_HTTP_PORT`` (port 0 picks a free one),
logs one ``listening`` line with the URL, and serves until SIGINT/SIGTERM, when the lifespan
stops the Kafka subscribers (committing nothing unhandled) and closes MongoDB.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn
from pydantic import ValidationError

from services.common.clock import UntrustedClockFileError
from services.common.declaration import ServiceDeclaration
from services.common.logging import configure_logging, get_logger
from services.common.runtime import create_app
from services.common.settings import CommonSettings

__all__ = ["listen", "run", "settings_or_exit"]

S = TypeVar("S", bound=CommonSettings)


def listen(settings: S) -> tuple[socket.socket, S]:
    """The bound listener, and the settings naming the port really bound (port 0 picks one):
    links fall back to it when LEADTRAIL_PUBLIC_URL is unset (``public_base_url``)."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP;
    # without it every small response waits ~40 ms for Nagle's algorithm.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((settings.http_host, settings.http_port))
    return listener, settings.model_copy(update={"http_port": listener.getsockname()[1]})


def settings_or_exit(name: str, load_settings: Callable[[], S]) -> S:
    """The process's settings, or one ``invalid configuration`` log line and exit 2."""
    try:
        return load_settings()
    except ValidationError as error:
        # One JSON line like every other (the level and format settings are what failed to
        # load); without the inputs, which may be secret keys.
        configure_logging(name)
        get_logger(name).error(
            "invalid configuration",
            errors=[
                {"setting": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in error.errors(include_input=False, include_url=False)
            ],
        )
        raise SystemExit(2) from None


def run(
    declaration: ServiceDeclaration[S, Any], load_settings: Callable[[], S] | None = None
) -> None:
    """Serve ``declaration`` with its settings from the environment (or ``load_settings``)."""
    name = declaration.name
    listener, settings = listen(settings_or_exit(name, load_settings or declaration.settings))
    try:
        app = create_app(declaration, settings)
    except UntrustedClockFileError as error:
        listener.close()
        get_logger(name).error("refusing to start: untrusted test clock", error=str(error))
        raise SystemExit(2) from None
    host, port = listener.getsockname()[:2]
    get_logger(name).info(
        "listening", url=f"http://{host}:{port}", public_url=settings.public_base_url()
    )
    serve(app, listener, settings, graceful_s=20)


def serve(app: Any, listener: socket.socket, settings: CommonSettings, *, graceful_s: int) -> None:
    """Run ``app`` on ``listener`` until stopped, as every Leadtrail process serves HTTP:
    uvicorn without its own logging, idle connections kept ``http_keep_alive_s``, requests in
    progress given ``graceful_s`` to finish on shutdown."""
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_s,
        timeout_keep_alive=settings.http_keep_alive_s,
    )
    asyncio.run(uvicorn.Server(config).serve(sockets=[listener]))
