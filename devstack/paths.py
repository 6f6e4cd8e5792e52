"""Names the infrastructure helpers share: environment variables, cache and run directories."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "LEADTRAIL_CACHE_DIR"
KAFKA_BOOTSTRAP_ENV = "LEADTRAIL_KAFKA_BOOTSTRAP"
MONGO_URL_ENV = "LEADTRAIL_MONGO_URL"
INFRA_MODE_ENV = "LEADTRAIL_INFRA"
"""Force how tests get servers when the two variables above are unset: ``local``/``docker``."""


def cache_root() -> Path:
    """Root of the download/build cache: ``$LEADTRAIL_CACHE_DIR`` or ``~/.cache/leadtrail``."""
    configured = os.environ.get(CACHE_ENV)
    root = Path(configured) if configured else Path.home() / ".cache" / "leadtrail"
    return root.expanduser().resolve()


def repo_root() -> Path:
    """The checkout this package runs from (``devstack/`` sits at its top)."""
    return Path(__file__).resolve().parents[1]


def default_run_root() -> Path:
    """``.run`` in the repository, where ``make up`` and the deploy scripts keep state."""
    return repo_root() / ".run"
