"""`python -m services.consent_ledger`: run the consent-ledger service."""

from services.common.runner import run
from services.consent_ledger.declaration import DECLARATION

if __name__ == "__main__":
    run(DECLARATION)
