"""`python -m services.crm_sync`: run the crm-sync service."""

from services.common.runner import run
from services.crm_sync.declaration import DECLARATION

if __name__ == "__main__":
    run(DECLARATION)
