"""`python -m services.consent_ledger`: run the consent-ledger service."""

from services.common.runner import run
from services.consent_ledger.app import build_spec

if __name__ == "__main__":
    run(build_spec())
