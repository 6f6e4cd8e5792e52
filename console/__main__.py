"""``python -m console``: serve the privacy operations console.

Binds ``LEADTRAIL_HTTP_HOST:LEADTRAIL_HTTP_PORT`` (0 picks a free port) and logs one
``listening`` line with the URL, as the services do.
"""

from __future__ import annotations

from console.app import create_console_app
from console.settings import ConsoleSettings
from services.common.logging import get_logger
from services.common.runner import listen, serve, settings_or_exit


def main() -> None:
    listener, settings = listen(settings_or_exit("console", ConsoleSettings))
    app = create_console_app(settings)
    host, port = listener.getsockname()[:2]
    get_logger("console").info("listening", url=f"http://{host}:{port}")
    serve(app, listener, settings, graceful_s=10)


if __name__ == "__main__":
    main()
