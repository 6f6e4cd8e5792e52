"""The ``leadtrail`` command groups, one module each; :mod:`ops.cli` assembles them."""
