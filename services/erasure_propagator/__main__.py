"""`python -m services.erasure_propagator`: run the erasure-propagator service."""

from services.common.runner import run
from services.erasure_propagator.app import SERVICE_NAME, SETTINGS_CLASS, build_spec

if __name__ == "__main__":
    run(SERVICE_NAME, build_spec, SETTINGS_CLASS)
