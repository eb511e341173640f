"""toolexpander: GRPO for small tool-calling LLMs with Dynamic Multi-Round Hard Sampling and
Self-Exemplifying Thinking (ToolExpander, arXiv 2510.07737).

Data flow, one sub-package each: ``data`` (schema, loaders, built-in suite) -> ``prompts`` ->
``rewards`` -> ``hard_sampling`` (policy, demo bank) -> ``trainer`` (the only TRL coupling) ->
``evaluation`` -> ``cli``; ``demo`` runs the whole chain. Importing this package imports no torch.
"""

__version__ = "0.1.0"
