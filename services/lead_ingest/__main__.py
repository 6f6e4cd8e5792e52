"""`python -m services.lead_ingest`: run the lead-ingest service."""

from services.common.runner import run
from services.lead_ingest.app import SERVICE_NAME, SETTINGS_CLASS, build_spec

if __name__ == "__main__":
    run(SERVICE_NAME, build_spec, SETTINGS_CLASS)
