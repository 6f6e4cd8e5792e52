"""`python -m services.lead_ingest`: run the lead-ingest service."""

from services.common.runner import run
from services.lead_ingest.declaration import DECLARATION

if __name__ == "__main__":
    run(DECLARATION)
