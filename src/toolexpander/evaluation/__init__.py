"""Evaluation: each record scored by its task's protocol (`toolexpander.tasks`: BFCL through its
official checker, API-Bank by exact match, our own data by Tool-N1's); batched generation (HF or
vLLM) shared by the eval command, the demo and the benchmarks.

- `scoring.evaluate_records(records, completions) -> (items, results)`: score in-process;
- `generation.generate_completions(model, tokenizer, messages_list, ...)`: batched generation;
- `runner.run_eval(EvalConfig(...))`: what ``toolexpander eval`` runs.

Importing this package imports no torch.
"""

from toolexpander.evaluation.generation import generate_completions
from toolexpander.evaluation.runner import EvalConfig, run_eval
from toolexpander.evaluation.scoring import evaluate_records, markdown_table, score_item

__all__ = [
    "EvalConfig",
    "evaluate_records",
    "generate_completions",
    "markdown_table",
    "run_eval",
    "score_item",
]
