"""`python -m services.retention_scheduler`: run the retention-scheduler service."""

from services.common.runner import run
from services.retention_scheduler.app import build_spec

if __name__ == "__main__":
    run(build_spec())
