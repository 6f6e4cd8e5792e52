"""`python -m services.lead_ingest`: run the lead-ingest service."""

from services.common.runner import run
from services.lead_ingest.app import build_spec

if __name__ == "__main__":
    run(build_spec())
