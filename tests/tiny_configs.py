"""Tiny configs shared by the tests (importable: pytest puts ``tests/`` on ``sys.path``
when it loads ``tests/conftest.py``).

``GROKKING`` trains in about a second; it leaves ``threads`` out because sweeps default
their members to one thread (the tests check that default); single runs add
``threads=1`` (the ``tiny`` fixture does).
"""

from __future__ import annotations

GROKKING = {
    "p": 17,
    "train_frac": 0.5,
    "d_model": 16,
    "n_heads": 2,
    "d_head": 8,
    "d_mlp": 32,
    "steps": 40,
    "eval_every": 5,
    "checkpoint_every": 10,
}
