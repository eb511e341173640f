"""The rewards, as TRL reward functions: ``reward(completions, answer, **kwargs) -> list[float]``.

``completions`` are strings (standard format) or message lists ``[{"role": "assistant",
"content": ...}]`` (conversational). ``answer`` is the dataset column: a call list
``[{"name", "arguments"}]``, the same as JSON text (how our trainer stores it for Arrow), or
None. TRL's other keyword arguments (prompts, completion_ids, trainer_state, extra dataset
columns, ...) are accepted and ignored. A reward never raises on what a model wrote or on a
malformed answer: that scores as wrong.

- `tool_n1`: binary correctness, Tool-N1's ``compute_score_v0`` exactly (SPEC §2).
- `toolrl`: ToolRL's fine-grained reward, for ablations.
- `self_exemplify`: the small bonus for a self-made example in the reasoning (SPEC §1).

Each has a single-item form (`tool_n1_score`, `toolrl_score`, `self_exemplify_score`) that
takes the completion text. Each reads the calls in ``call_format`` (default ``tooln1``, our
format; a native run binds the format of its chat template, `toolexpander.rewards.call_formats`), so
the two prompt formats are scored with the same semantics. `get_reward` finds one by name or by import path.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from toolexpander.data.schema import call_multiset
from toolexpander.errors import UserError
from toolexpander.rewards.call_formats import parse_calls
from toolexpander.rewards.parsing import (
    call_list,
    cut_at_assistant,
    decode_json,
    extract_examples,
    extract_tool_calls,
    has_think_tags,
    last_tool_call_block,
)

RewardFunc = Callable[..., list[float]]

def with_prefill(completion: Any, prefill: str) -> Any:
    """``completion`` with ``prefill`` (what the chat template wrote after the generation prompt,
    e.g. ``<think>``: `toolexpander.prompts.PromptSpec.reply_prefill`) put back in front of its text."""
    if not prefill:
        return completion
    if isinstance(completion, str):
        return prefill + completion
    first = next(
        (i for i, m in enumerate(completion) if m.get("role", "assistant") == "assistant"
         and isinstance(m.get("content"), str)),
        None,
    )
    if first is None:
        return completion
    return [{**m, "content": prefill + m["content"]} if i == first else m for i, m in enumerate(completion)]


def completion_text(completion: Any) -> str:
    """The text of one completion: the string itself, or the content of the last assistant
    message of a conversational completion ("" when there is none)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                content = message.get("content")
                if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
                    content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
                return content if isinstance(content, str) else ""
    return ""


# --- tool_n1 -------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _answer_multiset_from_json(text: str) -> dict[tuple, int] | None:
    # Tool-N1 decodes the ground truth (twice when double-encoded) but neither wraps a single
    # call object nor checks the items: a call dict therefore only matches an empty answer.
    return call_multiset(decode_json(text))


def _answer_multiset(answer: Any) -> dict[tuple, int] | None:
    # G completions share one answer string: decode it once (the result is never mutated).
    return _answer_multiset_from_json(answer) if isinstance(answer, str) else call_multiset(answer)


def tool_n1_score(text: str, answer: Any, call_format: str = "tooln1") -> float:
    """1.0 iff ``text`` answers exactly the calls in ``answer`` (SPEC §2), else 0.0.

    The text after the last ``<|im_start|>assistant`` must contain ``<think>`` and ``</think>``
    (anywhere) and end its last ``<tool_call>`` block with a call list whose multiset of
    ``(name, canonical arguments)`` equals the answer's; two empty lists match. In a native
    ``call_format`` (`toolexpander.rewards.call_formats`) the calls are read in that format instead,
    and compared alike.

    >>> tool_n1_score('<think>.</think><tool_call>[{"name": "f", "arguments": {"a": 1, "b": "x"}}]'
    ...               '</tool_call>', '[{"name": "f", "arguments": {"b": "x", "a": 1}}]')
    1.0
    >>> tool_n1_score('<think>.</think><tool_call>[{"name": "f", "arguments": {"a": "1"}}]</tool_call>',
    ...               [{"name": "f", "arguments": {"a": 1}}])
    0.0
    """
    text = cut_at_assistant(text)
    if not has_think_tags(text):
        return 0.0
    if call_format == "tooln1":
        block = last_tool_call_block(text)
        calls = None if block is None else call_list(decode_json(block))
    else:
        calls = parse_calls(text, call_format)
    if calls is None:
        return 0.0
    expected = _answer_multiset(answer)
    return 1.0 if expected is not None and call_multiset(calls) == expected else 0.0


def tool_n1(
    completions: Sequence[Any], answer: Sequence[Any], *, call_format: str = "tooln1", **kwargs: Any
) -> list[float]:
    """Tool-N1's binary reward (see `tool_n1_score`) for each completion."""
    return [
        tool_n1_score(completion_text(c), a, call_format) for c, a in zip(completions, answer, strict=True)
    ]


# --- toolrl --------------------------------------------------------------------------------

TOOLRL_MAX, TOOLRL_MIN = 3.0, -3.0
_IM_END = "<|im_end|>"
_TOOLRL_FORMAT = re.compile(r"<think>.*?</think>\s*<tool_call>.*?</tool_call>", re.DOTALL)
_THINK_FIRST = re.compile(r"<think>.*?</think>", re.DOTALL)


def _overlap(first: list, second: list) -> float:
    """ToolRL's ``match_score``: multiset Jaccard similarity; two empty lists match fully."""
    if not first and not second:
        return 1.0
    common = sum((Counter(first) & Counter(second)).values())
    return common / (len(first) + len(second) - common)


def _toolrl_correctness(predicted: list[dict], gold: list[dict]) -> float:
    """ToolRL's ``compute_tool_call_reward`` in [-3, 3]: name overlap, then for each gold call
    the best unused predicted call of that name by parameter-name overlap plus the number of
    parameter values equal (Python ``==``, so ``1 == 1.0``), normalised by the best possible."""
    score = _overlap([c["name"] for c in gold], [c["name"] for c in predicted])
    best_possible = 1.0
    used: set[int] = set()
    for want in gold:
        best_possible += 1.0 + len(want["arguments"])
        best_index, best_score = -1, 0.0
        for index, got in enumerate(predicted):
            if index in used or got["name"] != want["name"]:
                continue
            have = got["arguments"]
            candidate = _overlap(list(want["arguments"]), list(have)) + sum(
                1.0 for key, value in want["arguments"].items() if key in have and have[key] == value
            )
            if candidate > best_score:
                best_index, best_score = index, candidate
        if best_index >= 0:
            used.add(best_index)
            score += best_score
    return (TOOLRL_MAX - TOOLRL_MIN) * score / best_possible + TOOLRL_MIN


def toolrl_score(text: str, answer: Any, call_format: str = "tooln1") -> float:
    """ToolRL's reward (Qian et al. 2025, ``rlla.py``): format (0 or 1) plus correctness in
    [-3, 3], so in [-3, 4].

    Adapted to our output format, and where it differs from ToolRL:
    - format is 1 iff the reply (after the last ``<|im_start|>assistant``, up to ``<|im_end|>``,
      stripped) is ``<think>…</think>``, optional whitespace, then exactly one
      ``<tool_call>…</tool_call>`` block (ToolRL wants JSON lines and exact newlines);
    - the calls are a JSON list with ``arguments`` (ToolRL: one ``{"name", "parameters"}``
      object per line);
    - no calls or an ill-formed call list (including ``arguments`` that are not objects) gets
      -3, as ToolRL's ``except`` does;
    - an answer of ``[]`` is scored like any other (+3 for ``[]``, -3 for any call), where ToolRL
      gives 0 correctness to items answered in prose;
    - in a native ``call_format``, format is 1 iff the reply opens with the think block and its
      calls read in that format (`toolexpander.rewards.call_formats.parse_calls`).
    """
    text = cut_at_assistant(text).split(_IM_END, 1)[0].strip()
    if call_format == "tooln1":
        one_block = text.count("<tool_call>") == 1 and text.count("</tool_call>") == 1
        format_score = 1.0 if one_block and _TOOLRL_FORMAT.fullmatch(text) else 0.0
        predicted = extract_tool_calls(text)
    else:
        predicted = parse_calls(text, call_format)
        format_score = 1.0 if predicted is not None and _THINK_FIRST.match(text) else 0.0
    gold = call_list(decode_json(answer) if isinstance(answer, str) else answer)
    if predicted is None or gold is None:
        return format_score + TOOLRL_MIN
    if not all(isinstance(c["arguments"], dict) for c in predicted + gold):
        return format_score + TOOLRL_MIN
    try:
        return format_score + _toolrl_correctness(predicted, gold)
    except (TypeError, RecursionError):  # unhashable names, values nested too deep to compare
        return format_score + TOOLRL_MIN


def toolrl(
    completions: Sequence[Any], answer: Sequence[Any], *, call_format: str = "tooln1", **kwargs: Any
) -> list[float]:
    """ToolRL's fine-grained reward (see `toolrl_score`) for each completion, in [-3, 4]."""
    return [
        toolrl_score(completion_text(c), a, call_format) for c, a in zip(completions, answer, strict=True)
    ]


# --- self_exemplify ------------------------------------------------------------------------


def self_exemplify_score(
    text: str,
    answer: Any,
    *,
    bonus: float = 0.01,
    requires_correct: bool = False,
    call_format: str = "tooln1",
) -> float:
    """``bonus`` when the think block holds a well-formed self-made example (see
    `toolexpander.rewards.parsing.extract_examples`) and the answer format is valid (its calls
    read in ``call_format``: for ``tooln1`` a parseable call list in the last ``<tool_call>``
    block); with ``requires_correct`` the answer must also be right (`tool_n1_score` 1). Else 0.0.
    """
    if parse_calls(text, call_format) is None or not extract_examples(text):
        return 0.0
    if requires_correct and tool_n1_score(text, answer, call_format) != 1.0:
        return 0.0
    return bonus


def self_exemplify(
    completions: Sequence[Any],
    answer: Sequence[Any],
    *,
    bonus: float = 0.01,
    requires_correct: bool = False,
    call_format: str = "tooln1",
    **kwargs: Any,
) -> list[float]:
    """The self-exemplifying bonus (see `self_exemplify_score`) for each completion.

    Bind the options with ``functools.partial(self_exemplify, bonus=..., requires_correct=...)``:
    TRL unwraps partials, so the logged name stays ``self_exemplify``. With TRL's default
    ``scale_rewards="group"`` a bonus of 0.01 in a group where every answer is wrong becomes
    an advantage of about ±1 (SPEC §1).
    """
    return [
        self_exemplify_score(
            completion_text(c), a, bonus=bonus, requires_correct=requires_correct, call_format=call_format
        )
        for c, a in zip(completions, answer, strict=True)
    ]


# --- registry ------------------------------------------------------------------------------

REWARDS: dict[str, RewardFunc] = {func.__name__: func for func in (tool_n1, toolrl, self_exemplify)}


def get_reward(name: str) -> RewardFunc:
    """A reward by registry name, or a user's reward by import path ``package.module:function``
    (or ``package.module.function``, as in TRL's command line).

    >>> get_reward("tool_n1").__name__
    'tool_n1'
    """
    if name in REWARDS:
        return REWARDS[name]
    module_name, sep, attribute = name.partition(":") if ":" in name else name.rpartition(".")
    if not sep or not module_name or not attribute:
        raise UserError(
            f"unknown reward {name!r}; choose one of {', '.join(REWARDS)} or give package.module:function"
        )
    try:
        func = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise UserError(f"cannot load reward {name!r}: {error}") from error
    if not callable(func):
        raise UserError(f"reward {name!r} is not callable")
    return func
