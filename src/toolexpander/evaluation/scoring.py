"""Score completions against records, in-process: `evaluate_records` is what the command line,
the demo and the benchmarks share.

Each record is judged by the protocol of the task it names (`toolexpander.tasks.task_of`):
BFCL's official AST checker, API-Bank's exact match, or, for the suite and our own data,
Tool-N1's exact match, which also requires the ``<think>`` tags (the task's ``needs_think``).

The calls are read from a completion by `toolexpander.rewards.parse_calls` in the run's call
format (default ``tooln1``: the last ``<tool_call>`` block). A record without a completion is scored wrong and counted, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from toolexpander.rewards.call_formats import parse_calls
from toolexpander.rewards.parsing import cut_at_assistant, has_think_tags
from toolexpander.tasks import TASKS, task_of
from toolexpander.tasks.base import overall

MISSING = "missing_prediction"
NO_THINK = {"valid": False, "error_type": "format:no_think", "error": ["no <think></think> tags"]}


def score_item(record: dict, completion: str | None, call_format: str = "tooln1") -> dict:
    """One output item: ``id``, ``task``, ``category``, ``completion``, ``calls`` (the parsed call
    list, None when there is none), ``valid``, ``error_type`` and ``error``."""
    task = task_of(record)
    item = {
        "id": record["id"],
        "task": task.name,
        "category": record.get("category") or "all",
        "completion": completion,
    }
    if completion is None:
        return {
            **item,
            "calls": None,
            "valid": False,
            "error_type": MISSING,
            "error": ["no prediction for this id"],
        }
    calls = parse_calls(completion, call_format)
    if task.needs_think and not has_think_tags(cut_at_assistant(completion)):
        return {**item, "calls": calls, **NO_THINK}
    return {**item, "calls": calls, **task.check(record, calls)}


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


def markdown_table(results: dict) -> str:
    """The results as a Markdown table: one row per category, then the aggregates (in %)."""
    lines = ["| category | n | accuracy (%) |", "|---|---:|---:|"]
    for name, stats in results["categories"].items():
        lines.append(f"| {name} | {stats['n']} | {100 * stats['accuracy']:.2f} |")
    for name in ("non_live", "live", "overall"):
        if name in results:
            lines.append(f"| **{name}** | | **{100 * results[name]:.2f}** |")
    notes = [f"- {note}" for note in results.get("notes", [])]
    return "\n".join(lines + ([""] + notes if notes else []))
