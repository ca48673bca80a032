"""Sweeps: the spec (``sweep.json``, members, resume) and the executors (local, Ray)."""
