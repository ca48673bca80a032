"""LLM evaluations as inspect_ai tasks (the ``evals`` extra): Base64Bench.

Importing this package does not import inspect_ai; :mod:`phasewatch.evals.base64bench`
does.
"""
