"""Score completions against records, in-process: `evaluate_records` is what the command line,
the trainer and the demo share.

Each record is judged by the protocol of its benchmark, chosen from its fields:

- BFCL items (a ``ground_truth``, or an irrelevance/relevance ``category``): the official AST
  checker on the decoded calls (`toolexpander.evaluation.bfcl`);
- API-Bank items (``category`` ``apibank_l<N>``): exact match of API names and argument dicts
  (`toolexpander.evaluation.apibank`);
- anything else: Tool-N1's exact match, the default reward (`toolexpander.rewards.tool_n1_score`),
  which also requires the ``<think>`` tags.

The calls are read from a completion by `toolexpander.rewards.extract_tool_calls` (the last
``<tool_call>`` block). A record without a completion is scored wrong and counted, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from toolexpander.data.benchmarks import BFCL_CATEGORIES, BFCL_IRRELEVANCE, BFCL_RELEVANCE
from toolexpander.evaluation import apibank, bfcl
from toolexpander.rewards.parsing import cut_at_assistant, extract_tool_calls, has_think_tags
from toolexpander.rewards.rewards import tool_n1_score

MISSING = "missing_prediction"


def protocol(record: dict) -> str:
    """``bfcl``, ``apibank`` or ``tool_n1``: how `evaluate_records` judges this record."""
    category = record.get("category") or ""
    if "ground_truth" in record or category in BFCL_IRRELEVANCE + BFCL_RELEVANCE:
        return "bfcl"
    if category.startswith("apibank_"):
        return "apibank"
    return "tool_n1"


def _tool_n1_check(record: dict, completion: str, calls: list[dict] | None) -> dict:
    if tool_n1_score(completion, record["answer"]) == 1.0:
        return {"valid": True, "error_type": None, "error": []}
    if not has_think_tags(cut_at_assistant(completion)):
        return {"valid": False, "error_type": "format:no_think", "error": ["no <think></think> tags"]}
    if calls is None:
        return {"valid": False, "error_type": "decoder_failed", "error": ["no decodable call list"]}
    return {"valid": False, "error_type": "mismatch", "error": [f"expected {record['answer']}"]}


def score_item(record: dict, completion: str | None) -> dict:
    """One output item: ``id``, ``category``, ``completion``, ``calls`` (the parsed call list,
    None when there is none), ``valid``, ``error_type`` and ``error``."""
    item = {"id": record["id"], "category": record.get("category") or "all", "completion": completion}
    if completion is None:
        return {
            **item,
            "calls": None,
            "valid": False,
            "error_type": MISSING,
            "error": ["no prediction for this id"],
        }
    calls = extract_tool_calls(completion)
    kind = protocol(record)
    if kind == "bfcl":
        verdict = bfcl.check(record, bfcl.decoded_calls(calls))
    elif kind == "apibank":
        verdict = apibank.check(record, calls)
    else:
        verdict = _tool_n1_check(record, completion, calls)
    return {**item, "calls": calls, **verdict}


def summarize(items: Sequence[dict]) -> dict:
    """``{"categories": {cat: {"accuracy", "correct", "n"}}, <aggregates>, "missing_predictions",
    "notes"}``. BFCL runs get the leaderboard's ``non_live``/``live``/``overall``
    (`toolexpander.evaluation.bfcl.aggregates`); other runs get ``overall``, the accuracy over
    all items."""
    categories: dict[str, dict] = {}
    for item in items:
        stats = categories.setdefault(item["category"], {"accuracy": 0.0, "correct": 0, "n": 0})
        stats["n"] += 1
        stats["correct"] += bool(item["valid"])
    for stats in categories.values():
        stats["accuracy"] = stats["correct"] / stats["n"]
    results: dict = {"categories": categories}
    notes = []
    if categories and set(categories) <= set(BFCL_CATEGORIES):
        summary, notes = bfcl.aggregates(categories)
        results.update(summary)
    elif items:
        results["overall"] = sum(s["correct"] for s in categories.values()) / len(items)
    missing = sum(item["error_type"] == MISSING for item in items)
    if missing:
        notes.append(f"{missing} items had no prediction and count as wrong")
    results["missing_predictions"] = missing
    results["notes"] = notes
    return results


def evaluate_records(records: Sequence[dict], completions: Mapping[str, str]) -> tuple[list[dict], dict]:
    """Score ``completions`` (record id -> completion text) against ``records``.

    Returns ``(items, results)``: one item per record, in order (see `score_item`), and the
    summary of `summarize`. Records without a completion count as wrong.
    """
    items = [score_item(record, completions.get(record["id"])) for record in records]
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
