"""toolexpander: GRPO for small tool-calling LLMs with Dynamic Multi-Round Hard Sampling and
Self-Exemplifying Thinking (ToolExpander, arXiv 2510.07737).

Data flow, one sub-package each: ``data`` (record schema, data formats) -> ``tasks`` (one per
benchmark: BFCL, API-Bank, the built-in suite) -> ``prompts`` -> ``rewards`` -> ``hard_sampling``
(policy, demo bank) -> ``trainer`` (the only TRL coupling) -> ``evaluation`` -> ``cli``; ``demo``
runs the whole chain. No module imports a later one (tests/test_layers.py). Importing this package
imports no torch.
"""

__version__ = "0.1.0"
