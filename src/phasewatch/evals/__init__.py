"""LLM evaluations: Base64Bench and the alignment-faking compliance gap (inspect_ai tasks,
the ``evals`` extra), and thought-injection localization (introspection, single-run,
sweeps and activation patching) on local Hugging Face causal LMs.

Importing this package does not import inspect_ai or torch; the task modules
(:mod:`phasewatch.evals.base64bench`, :mod:`phasewatch.evals.alignment_faking`) import
inspect_ai, the introspection modules import torch.
"""
