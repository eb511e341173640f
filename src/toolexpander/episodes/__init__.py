"""Episodes with tools: a model's calls executed on simulated tools, turn after turn.

- `dispatch`: the safe dispatcher. Structured calls ``{"name", "arguments"}`` go to the public
  methods of a rollout's own simulator objects, with JSON-literal arguments only, a cap on calls
  per turn and on the size of arguments; every failure is a per-call error result, never an
  exception. Nothing here evaluates text: calls arrive already read (`toolexpander.rewards`).

The benchmark that uses it, BFCL's multi-turn categories (records, simulators, per-turn
checker), is `toolexpander.tasks.bfcl_multi_turn`. Imports no torch.
"""

from toolexpander.episodes.dispatch import (
    MAX_ARGUMENT_CHARS,
    MAX_CALLS_PER_TURN,
    Dispatcher,
    argument_problem,
    public_functions,
    result_text,
)

__all__ = [
    "MAX_ARGUMENT_CHARS",
    "MAX_CALLS_PER_TURN",
    "Dispatcher",
    "argument_problem",
    "public_functions",
    "result_text",
]
