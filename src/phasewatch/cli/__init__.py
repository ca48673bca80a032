"""The ``phasewatch`` command line (typer): :mod:`.app` is the entry point, one module per
verb group."""
