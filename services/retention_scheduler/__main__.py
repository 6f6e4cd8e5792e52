"""`python -m services.retention_scheduler`: run the retention-scheduler service."""

from services.common.runner import run
from services.retention_scheduler.app import SERVICE_NAME, SETTINGS_CLASS, build_spec

if __name__ == "__main__":
    run(SERVICE_NAME, build_spec, SETTINGS_CLASS)
