"""`python -m services.retention_scheduler`: run the retention-scheduler service."""

from services.common.runner import run
from services.retention_scheduler.declaration import DECLARATION

if __name__ == "__main__":
    run(DECLARATION)
