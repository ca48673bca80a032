"""The ``phasewatch`` command line (typer): :mod:`.app` builds the app, one module per verb
group (:mod:`.measure`, :mod:`.detect`, :mod:`.sweep`, :mod:`.runs`, :mod:`.view` with its
HTTP handler in :mod:`.serve`, :mod:`.forecast`, :mod:`.eval`, :mod:`.superposition`), each
imported when its command runs (:mod:`.lazy`); :mod:`.flags` generates flags from config
dataclasses.

Importing it imports :mod:`phasewatch`, which sets ``OMP_WAIT_POLICY=PASSIVE`` unless the
environment already sets it, before any command imports torch (lazily); sweep workers and
Ray inherit it.
"""


def main() -> None:
    """The ``phasewatch`` console script (``phasewatch.cli:main``, as before the split)."""
    from phasewatch.cli.app import main as app_main

    app_main()
