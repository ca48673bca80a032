"""Sweeps: the spec and members (``spec``, ``sweep.json``), running and resuming
(``runner``), the training plan (``plan``) and the executors (``executors``: local, Ray)."""
