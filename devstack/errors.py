"""The one exception type the infrastructure helpers raise."""

from __future__ import annotations


class InfraError(RuntimeError):
    """A local server could not be installed, started, checked or stopped.

    The message is meant for a human: it names what failed and, where a server log exists,
    ends with the last lines of that log.
    """
