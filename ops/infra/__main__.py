"""``python -m ops.infra``: see :mod:`ops.infra.cli`."""

from ops.infra.cli import main

main()
