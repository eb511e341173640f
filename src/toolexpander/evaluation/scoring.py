"""Score completions against records, in-process: `evaluate_records` is what the command line,
the demo and the benchmarks share.

Each record is judged by the protocol of the task it names (`toolexpander.tasks.task_of`):
BFCL's official AST checker, API-Bank's exact match, or, for the suite and our own data,
Tool-N1's exact match, which also requires the ``<think>`` tags (the task's ``needs_think``).

The calls are read from a completion by `toolexpander.rewards.parse_calls` in the run's call
format (default ``tooln1``: the last ``<tool_call>`` block). A record without a completion is scored wrong and counted, never dropped.

A multi-turn record (a task with ``multi_turn``: BFCL's multi-turn categories) is scored from the
calls made in each turn of its episode (`score_episode`, `evaluate_episodes`), not from one
completion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from toolexpander.rewards.call_formats import parse_calls
from toolexpander.rewards.parsing import cut_at_assistant, has_think_tags
from toolexpander.tasks import TASKS, task_of
from toolexpander.tasks.base import Task, overall

MISSING = "missing_prediction"
NO_THINK = {"valid": False, "error_type": "format:no_think", "error": ["no <think></think> tags"]}
NO_PREDICTION = {"valid": False, "error_type": MISSING, "error": ["no prediction for this id"]}
NEEDS_TURNS = {
    "valid": False,
    "error_type": "multi_turn:needs_turns",
    "error": ["a multi-turn item is scored from the calls of each turn (score_episode), not one completion"],
}


def _item_head(record: dict, task: Task) -> dict:
    return {"id": record["id"], "task": task.name, "category": record.get("category") or "all"}


def score_item(record: dict, completion: str | None, call_format: str = "tooln1") -> dict:
    """One output item: ``id``, ``task``, ``category``, ``completion``, ``calls`` (the parsed call
    list, None when there is none), ``valid``, ``error_type`` and ``error``."""
    task = task_of(record)
    item = {**_item_head(record, task), "completion": completion}
    if completion is None:
        return {**item, "calls": None, **NO_PREDICTION}
    if task.multi_turn:
        return {**item, "calls": None, **NEEDS_TURNS}
    calls = parse_calls(completion, call_format)
    if task.needs_think and not has_think_tags(cut_at_assistant(completion)):
        return {**item, "calls": calls, **NO_THINK}
    return {**item, "calls": calls, **task.check(record, calls)}


def score_episode(record: dict, turns: list[list[dict]] | None) -> dict:
    """One output item of a multi-turn record: ``id``, ``task``, ``category``, ``turns`` (the calls
    made in each turn, None when there is no prediction), ``valid``, ``error_type``, ``error``
    and ``turns_valid`` (each turn's verdict)."""
    task = task_of(record)
    item = {**_item_head(record, task), "turns": turns}
    if turns is None:
        return {**item, **NO_PREDICTION, "turns_valid": []}
    return {**item, **task.check(record, turns)}


def summarize(items: Sequence[dict]) -> dict:
    """``{"categories": {cat: {"accuracy", "correct", "n"}}, <aggregates>, "missing_predictions",
    "notes"}``. A run of one task gets that task's aggregates (BFCL: the leaderboard's
    ``non_live``/``live``/``overall``); others get ``overall``, the accuracy over all items."""
    categories: dict[str, dict] = {}
    for item in items:
        stats = categories.setdefault(item["category"], {"accuracy": 0.0, "correct": 0, "n": 0})
        stats["n"] += 1
        stats["correct"] += bool(item["valid"])
    for stats in categories.values():
        stats["accuracy"] = stats["correct"] / stats["n"]
    tasks = {item["task"] for item in items}
    aggregate = TASKS[tasks.pop()].aggregate if len(tasks) == 1 else overall
    summary, notes = aggregate(categories)
    results: dict = {"categories": categories, **summary}
    missing = sum(item["error_type"] == MISSING for item in items)
    if missing:
        notes.append(f"{missing} items had no prediction and count as wrong")
    results["missing_predictions"] = missing
    results["notes"] = notes
    return results


def evaluate_records(
    records: Sequence[dict], completions: Mapping[str, str], call_format: str = "tooln1"
) -> tuple[list[dict], dict]:
    """Score ``completions`` (record id -> completion text, calls written in ``call_format``)
    against ``records``.

    Returns ``(items, results)``: one item per record, in order (see `score_item`), and the
    summary of `summarize`. Records without a completion count as wrong.
    """
    items = [score_item(record, completions.get(record["id"]), call_format) for record in records]
    return items, summarize(items)


def evaluate_episodes(
    records: Sequence[dict], predictions: Mapping[str, list[list[dict]]]
) -> tuple[list[dict], dict]:
    """Score multi-turn ``records`` from the calls made in each turn (record id -> turns):
    ``(items, results)`` as `evaluate_records` gives them (see `score_episode`)."""
    items = [score_episode(record, predictions.get(record["id"])) for record in records]
    return items, summarize(items)


def markdown_table(results: dict) -> str:
    """The results as a Markdown table: one row per category, then the aggregates (in %)."""
    lines = ["| category | n | accuracy (%) |", "|---|---:|---:|"]
    for name, stats in results["categories"].items():
        lines.append(f"| {name} | {stats['n']} | {100 * stats['accuracy']:.2f} |")
    for name in ("non_live", "live", "overall", "multi_turn"):
        if name in results:
            lines.append(f"| **{name}** | | **{100 * results[name]:.2f}** |")
    notes = [f"- {note}" for note in results.get("notes", [])]
    return "\n".join(lines + ([""] + notes if notes else []))
