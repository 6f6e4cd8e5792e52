"""`python -m services.erasure_propagator`: run the erasure-propagator service."""

from services.common.runner import run
from services.erasure_propagator.declaration import DECLARATION

if __name__ == "__main__":
    run(DECLARATION)
