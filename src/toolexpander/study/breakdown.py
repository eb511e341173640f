"""What an arm learned, from its scored predictions: well-formed replies, the right tool, the right
arguments given the right tool, no-call accuracy, accuracy per tool, what hard sampling posed and
solved on each visit, and intervals that resample **tools**, not items (the suite's test items
cluster by tool: 26 tools, 1-11 items each, so an interval over items is too narrow). An item whose
gold answer calls nothing clusters by the tools it offers: all of BFCL's 100 irrelevance items in
one cluster would make an arm's interval swing with that one draw.

Pure Python: works on the items `toolexpander.evaluation.scoring.evaluate_records` returns and the
records they score. Importable without torch.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence

from toolexpander.data.schema import call_multiset
from toolexpander.evaluation.scoring import MISSING

NO_CALL = "(no call)"
BOOTSTRAP_REPS = 2000
VISIT_COUNTS = ("groups", "solved", "zero_shot_correct", "zero_shot_rollouts", "demo_correct", "demo_rollouts")


def gold_tool(record: dict) -> str:
    """The cluster an item belongs to: the tools its gold answer calls, or ``(no call)``."""
    names = sorted({call["name"] for call in record["answer"]})
    return "+".join(names) or NO_CALL


def resampling_cluster(record: dict) -> str:
    """The cluster an item is resampled with: its `gold_tool`, or for an item that calls nothing,
    ``(no call)`` and the tools it offers (items offering the same tools fail or pass together)."""
    tool = gold_tool(record)
    if tool != NO_CALL:
        return tool
    return f"{NO_CALL} " + "+".join(sorted(t["name"] for t in record["tools"]))


def answer_key(calls: Sequence[dict]) -> tuple | None:
    """A hashable form of a call list under Tool-N1's comparison (order of calls and keys ignored)."""
    counts = call_multiset(calls)
    return None if counts is None else tuple(sorted(counts.items()))


def leaked_ids(records: Sequence[dict], seen: Sequence[dict]) -> set[str]:
    """Ids of ``records`` whose gold call list equals that of an item in ``seen`` (the training
    items and the demonstration pool): a model can answer them by recall."""
    seen_keys = {answer_key(item["answer"]) for item in seen}
    return {record["id"] for record in records if answer_key(record["answer"]) in seen_keys}


def item_facts(record: dict, item: dict) -> dict:
    """Per item: ``well_formed`` (a call list was read, in the required format), ``right_tool`` (the
    called names equal the gold ones, as a multiset), ``valid``, the item's ``tool`` (`gold_tool`)
    and its resampling ``cluster``."""
    well_formed = (
        item["calls"] is not None
        and item["error_type"] != MISSING
        and not (item["error_type"] or "").startswith("format:")
    )
    names = sorted(call.get("name") for call in item["calls"] or [] if isinstance(call, dict))
    right_tool = well_formed and names == sorted(call["name"] for call in record["answer"])
    return {
        "tool": gold_tool(record),
        "cluster": resampling_cluster(record),
        "well_formed": well_formed,
        "right_tool": right_tool,
        "valid": bool(item["valid"]),
    }


def _share(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def cluster_interval(
    values: Sequence[float],
    clusters: Sequence[str],
    statistic: Callable[[Sequence[float]], float] | None = None,
    reps: int = BOOTSTRAP_REPS,
    seed: int = 0,
) -> list[float]:
    """A 95 % percentile bootstrap interval of the mean of ``values`` that resamples whole
    ``clusters`` (tools) with replacement. ``[nan, nan]`` for no values."""
    if not values:
        return [float("nan"), float("nan")]
    by_cluster: dict[str, list[float]] = {}
    for value, cluster in zip(values, clusters, strict=True):
        by_cluster.setdefault(cluster, []).append(value)
    groups = [(sum(v), len(v)) for v in by_cluster.values()]
    rng = random.Random(seed)
    means = []
    for _ in range(reps):
        drawn = rng.choices(groups, k=len(groups))
        means.append(sum(s for s, _ in drawn) / sum(n for _, n in drawn))
    means.sort()
    return [means[int(0.025 * reps)], means[min(int(0.975 * reps), reps - 1)]]


def breakdown(records: Sequence[dict], items: Sequence[dict], leaked: Collection[str] = ()) -> dict:
    """The breakdown of one arm on one split: accuracy with its tool-resampled interval, the
    shares above, accuracy per tool, and accuracy without the ``leaked`` ids (`leaked_ids`)."""
    facts = [item_facts(record, item) for record, item in zip(records, items, strict=True)]
    valid = [f["valid"] for f in facts]
    per_tool: dict[str, list[bool]] = {}
    for fact in facts:
        per_tool.setdefault(fact["tool"], []).append(fact["valid"])
    clean = [f["valid"] for f, record in zip(facts, records) if record["id"] not in leaked]
    return {
        "n": len(facts),
        "accuracy": _share(valid),
        "interval": cluster_interval([float(v) for v in valid], [f["cluster"] for f in facts]),
        "tools": len(per_tool),
        "well_formed": _share([f["well_formed"] for f in facts]),
        "right_tool": _share([f["right_tool"] for f in facts]),
        "right_arguments_given_right_tool": _share([f["valid"] for f in facts if f["right_tool"]]),
        "no_call_accuracy": _share([f["valid"] for f in facts if f["tool"] == NO_CALL]),
        "per_tool": {tool: {"n": len(v), "accuracy": _share(v)} for tool, v in sorted(per_tool.items())},
        "leaked": len(facts) - len(clean),
        "accuracy_without_leaked": _share(clean),
    }


def paired_difference(
    valid_a: Sequence[bool], valid_b: Sequence[bool], clusters: Sequence[str], seed: int = 0
) -> dict:
    """Accuracy of A minus accuracy of B on the same items (verdicts in the same order), with a
    95 % interval that resamples ``clusters`` (the same draw for both arms, so the interval is of
    the difference itself). Over several suite seeds, a cluster is a (seed, tool) pair."""
    diffs = [float(a) - float(b) for a, b in zip(valid_a, valid_b, strict=True)]
    return {"difference": sum(diffs) / len(diffs), "interval": cluster_interval(diffs, clusters, seed=seed)}


def visit_tally(ledger: Sequence[dict]) -> list[dict]:
    """Hard sampling's ledger (``hard_samples.jsonl``, one row per group posed) per visit round and
    number of demonstrations posed: groups, groups solved (at least one correct rollout), and correct
    rollouts of those posed zero-shot and of those posed with the demonstrations (carry-over poses
    some of a group's rollouts each way). Shows whether items climb, get solved there, and fade back."""
    tally: dict[tuple[int, int], dict] = {}
    for row in ledger:
        key = (row["round"], row["shots"])
        cell = tally.setdefault(key, {"round": key[0], "shots": key[1]} | dict.fromkeys(VISIT_COUNTS, 0))
        cell["groups"] += 1
        cell["solved"] += row["successes"] > 0
        cell["zero_shot_correct"] += row["successes"] - row["demo_successes"]
        cell["zero_shot_rollouts"] += row["num_generations"] - row["demo_rollouts"]
        cell["demo_correct"] += row["demo_successes"]
        cell["demo_rollouts"] += row["demo_rollouts"]
    return [tally[key] for key in sorted(tally)]
