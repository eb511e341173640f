"""What a task is: the protocol that scores one benchmark's records, and the generic one.

A `Task` checks one answer (the calls parsed from a completion, or None when it holds no
decodable call list; for a multi-turn task, the calls made in each turn) against a record, says which tools the prompt shows, and aggregates its
per-category accuracies. `toolexpander.evaluation.scoring` picks the task by the record's
``task`` name, never by which keys the record has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from toolexpander.data.schema import GENERIC_TASK, call_multiset

# A verdict: {"valid": bool, "error_type": str | None, "error": [str, ...]}.
Verdict = dict
CORRECT: Verdict = {"valid": True, "error_type": None, "error": []}
NO_CALLS: Verdict = {"valid": False, "error_type": "decoder_failed", "error": ["no decodable call list"]}


def record_tools(record: dict) -> list[dict]:
    """The tools as the record holds them: what most tasks show in the prompt."""
    return record["tools"]


def overall(categories: dict[str, dict]) -> tuple[dict[str, float], list[str]]:
    """``overall``: the accuracy over all items of ``categories`` (``{"correct", "n"}`` each)."""
    n = sum(stats["n"] for stats in categories.values())
    return ({"overall": sum(stats["correct"] for stats in categories.values()) / n} if n else {}), []


def exact_match(record: dict, calls: list[dict] | None) -> Verdict:
    """Tool-N1's comparison: the multisets of ``(name, canonical arguments)`` are equal."""
    if calls is None:
        return NO_CALLS
    want = call_multiset(record["answer"])
    if want is not None and call_multiset(calls) == want:
        return CORRECT
    return {"valid": False, "error_type": "mismatch", "error": [f"expected {record['answer']}"]}


@dataclass(frozen=True)
class Task:
    """One benchmark's protocol."""

    name: str = field(metadata={"help": "what records write under 'task'"})
    check: Callable[[dict, list[dict] | None], Verdict] = field(
        metadata={"help": "(record, parsed calls or None) -> verdict"}
    )
    prompt_tools: Callable[[dict], list[dict]] = field(
        default=record_tools, metadata={"help": "record -> the tools its prompt shows"}
    )
    aggregate: Callable[[dict[str, dict]], tuple[dict[str, float], list[str]]] = field(
        default=overall, metadata={"help": "per-category stats -> (summary numbers, notes)"}
    )
    needs_think: bool = field(
        default=False,
        metadata={"help": "an answer counts only with <think></think> (Tool-N1's format rule)"},
    )
    multi_turn: bool = field(
        default=False,
        metadata={"help": "check takes the calls made in each turn of an episode, not one reply's calls"},
    )


# Our own data and the training formats: Tool-N1's reward as the verdict (SPEC §2).
GENERIC = Task(GENERIC_TASK, exact_match, needs_think=True)
