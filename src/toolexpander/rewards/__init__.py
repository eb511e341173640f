"""Parsing a model's answer and scoring it: Tool-N1's binary reward, ToolRL's fine-grained one,
and the self-exemplifying bonus, as TRL reward functions (pure Python, no torch; only the native call formats load transformers'
response parser, lazily)."""

from toolexpander.rewards.call_formats import CALL_FORMATS, parse_calls
from toolexpander.rewards.parsing import (
    cut_at_assistant,
    extract_examples,
    extract_think,
    extract_tool_calls,
)
from toolexpander.rewards.rewards import (
    REWARDS,
    completion_text,
    get_reward,
    self_exemplify,
    self_exemplify_score,
    tool_n1,
    tool_n1_score,
    toolrl,
    toolrl_score,
    with_prefill,
)

__all__ = [
    "CALL_FORMATS",
    "REWARDS",
    "completion_text",
    "cut_at_assistant",
    "extract_examples",
    "extract_think",
    "extract_tool_calls",
    "get_reward",
    "parse_calls",
    "self_exemplify",
    "self_exemplify_score",
    "tool_n1",
    "tool_n1_score",
    "toolrl",
    "toolrl_score",
    "with_prefill",
]
