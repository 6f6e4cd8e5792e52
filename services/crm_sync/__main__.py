"""`python -m services.crm_sync`: run the crm-sync service."""

from services.common.runner import run
from services.crm_sync.app import SERVICE_NAME, SETTINGS_CLASS, build_spec

if __name__ == "__main__":
    run(SERVICE_NAME, build_spec, SETTINGS_CLASS)
