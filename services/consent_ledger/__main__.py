"""`python -m services.consent_ledger`: run the consent-ledger service."""

from services.common.runner import run
from services.consent_ledger.app import SERVICE_NAME, SETTINGS_CLASS, build_spec

if __name__ == "__main__":
    run(SERVICE_NAME, build_spec, SETTINGS_CLASS)
