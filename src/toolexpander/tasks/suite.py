"""The built-in tool task suite: synthetic tool-calling tasks, generated deterministically from a seed.

31 tools in 25 domains, each a JSON-schema function with typed parameters (string, integer, number,
boolean, array, enum, optional ones) and six query templates. Five tools are held out entirely: they
appear only in the ``test_unseen_tools`` split. Splits:

- ``train``: the first four templates of each seen tool, values from the train pools, drawn at
  random; each tool's first item is moved to the front, so a run on the first N >= 26 training
  items has trained on every tool that ``test`` asks for;
- ``test``: the same tools, the last two templates and values from the test pools, so no test query
  reuses a phrasing or a (non-enum) value seen in training;
- ``test_unseen_tools``: calls only the held-out tools (any template, test values).

At the ``full`` level each split mixes ~70 % single calls, ~15 % parallel calls (two calls, same or
different tools) and ~15 % no-call items (a request no shown tool can serve, answer ``[]``), and
every record shows the right tool(s) plus 2-4 distractors, shuffled. The ``easy`` level (`LEVELS`)
has single calls only, each with one distractor. Values in a query map exactly onto argument values (numbers
stay numbers, enums verbatim, free text in quotes) and an optional parameter is in the answer only
when the query states it, so exact-match scoring is fair.

Sized for the demo's weak base model (SmolLM2-135M): it solves nothing zero-shot at either level,
and with two demonstrations from the train split (greedy, the reply prefilled with ``<think>`` as
the demo poses it) 48.3 % of the easy level's 120 test items (45.8 % for seed 1);
``benchmarks/suite_difficulty.py`` measures it, and the README has the other levels and settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from toolexpander.data.schema import make_record
from toolexpander.files import jsonl_text, write_files
from toolexpander.tasks.base import Task, exact_match
from toolexpander.tasks.suite_catalogue import HELD_OUT_TOOLS, TOOLS, TOOLS_BY_NAME, SuiteTool

NAME = "suite"

SPLITS = ("train", "test", "test_unseen_tools")
KINDS = ("single", "parallel", "no_call")


@dataclass(frozen=True)
class Level:
    """How hard a suite is: the share of parallel and no-call items (the rest are single calls) and
    how many distractor tools each item shows (inclusive range)."""

    parallel_share: float
    no_call_share: float
    distractors: tuple[int, int]


# ``full`` is the suite as described above; ``easy`` is for models too weak to get any signal from
# it even with demonstrations (SPEC §5): single calls only, one distractor, a short prompt.
LEVELS = {"full": Level(0.15, 0.15, (2, 4)), "easy": Level(0.0, 0.0, (1, 1))}
# Redraws allowed for one item before a split is declared too large for the pools.
MAX_DRAWS = 1000
# Joins the two requests of a parallel item; the test split has its own.
CONNECTORS = {
    "train": ("{a} {b}", "{a} Also: {b}", "{a} And one more thing: {b}"),
    "test": ("{a} Second request: {b}", "Two things. {a} Then: {b}"),
}


@dataclass(frozen=True)
class _SplitPlan:
    """What one split draws from."""

    callable: tuple[SuiteTool, ...]  # tools its answers (and no-call queries) use
    shown: tuple[SuiteTool, ...]  # tools it may show as distractors
    templates: str  # "train", "test" or "all"
    pool: str  # value pool: "train" or "test"
    connectors: tuple[str, ...]
    lead_with_each_tool: bool = False  # see `_lead_with_each_tool`


def _plan(split: str) -> _SplitPlan:
    seen = tuple(t for t in TOOLS if t.name not in HELD_OUT_TOOLS)
    if split == "train":
        return _SplitPlan(seen, seen, "train", "train", CONNECTORS["train"], lead_with_each_tool=True)
    if split == "test":
        return _SplitPlan(seen, seen, "test", "test", CONNECTORS["test"])
    held_out = tuple(TOOLS_BY_NAME[name] for name in HELD_OUT_TOOLS)
    return _SplitPlan(held_out, TOOLS, "all", "test", CONNECTORS["test"])


def _templates(tool: SuiteTool, which: str) -> tuple[str, ...]:
    return {"train": tool.train_templates, "test": tool.test_templates, "all": tool.templates}[which]


# A drawn item before it becomes a record: its kind, query, gold calls and shown tools.
_Item = tuple[str, str, list[dict], list[dict]]


def _draw_item(rng: random.Random, kind: str, plan: _SplitPlan, level: Level) -> tuple[str, list[dict], list[dict]]:
    """One item of ``kind``: its query, gold calls and shown tools (right ones and distractors, shuffled)."""
    first = rng.choice(plan.callable)
    query, call = first.draw_call(rng, _templates(first, plan.templates), plan.pool)
    calls, right = [call], [first]
    if kind == "parallel":
        second = rng.choice(plan.callable)
        query_b, call_b = second.draw_call(rng, _templates(second, plan.templates), plan.pool)
        while call_b == call:  # two identical calls would be one request asked twice
            query_b, call_b = second.draw_call(rng, _templates(second, plan.templates), plan.pool)
        query = rng.choice(plan.connectors).format(a=query, b=query_b)
        calls.append(call_b)
        if second is not first:
            right.append(second)
    if kind == "no_call":
        # No shown tool may serve the request: leave out its whole domain (timer vs reminder, ...).
        candidates = [t for t in plan.shown if t.domain != first.domain]
        calls, right = [], []
    else:
        candidates = [t for t in plan.shown if t not in right]
    shown = right + rng.sample(candidates, rng.randint(*level.distractors))
    rng.shuffle(shown)
    return query, calls, [tool.schema() for tool in shown]


def _lead_with_each_tool(items: list[_Item]) -> list[_Item]:
    """``items`` with each called tool's first item moved to the front, the rest in drawn order. A
    short run on the first N items then trains on every tool the split calls, once N reaches their
    number (26 seen tools): drawn at random, the first 32 items called only 18 of them (seed 0), so a
    third of `test` asked for tools such a run never trained on. Only the order changes, so the
    demonstration pool (the whole split) is the one drawn at random."""
    first_of_tool: dict[str, int] = {}
    for index, (_, _, calls, _) in enumerate(items):
        if calls:
            first_of_tool.setdefault(calls[0]["name"], index)
    leading = set(first_of_tool.values())
    return [items[i] for i in sorted(leading)] + [item for i, item in enumerate(items) if i not in leading]


def _kinds(n: int, level: Level) -> list[str]:
    n_parallel, n_no_call = round(n * level.parallel_share), round(n * level.no_call_share)
    return ["parallel"] * n_parallel + ["no_call"] * n_no_call + ["single"] * (n - n_parallel - n_no_call)


def build_split(split: str, n: int, seed: int = 0, level: str = "full") -> list[dict]:
    """``n`` records of ``split`` with distinct queries; one RNG per split, so sizes do not interact."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if level not in LEVELS:
        raise ValueError(f"unknown suite level {level!r}; choose one of {', '.join(LEVELS)}")
    # The full level keeps its original RNG stream, so it draws the records it always did.
    rng = random.Random(f"toolexpander-suite:{seed}:{split}" + ("" if level == "full" else f":{level}"))
    plan = _plan(split)
    kinds = _kinds(n, LEVELS[level])
    rng.shuffle(kinds)
    items: list[_Item] = []
    queries = set()
    for kind in kinds:
        for _ in range(MAX_DRAWS):
            query, calls, tools = _draw_item(rng, kind, plan, LEVELS[level])
            if query not in queries:
                break
        else:
            raise ValueError(f"could not draw {n} distinct queries for split {split!r}; ask for fewer")
        queries.add(query)
        items.append((kind, query, calls, tools))
    if plan.lead_with_each_tool:
        items = _lead_with_each_tool(items)
    prefix = "suite" if level == "full" else f"suite-{level}"
    return [
        make_record(f"{prefix}-{split}-{i:04d}", [{"role": "user", "content": query}], tools, calls, task=NAME, kind=kind)
        for i, (kind, query, calls, tools) in enumerate(items, start=1)
    ]


def build_suite(seed: int = 0, *, n_train: int = 300, n_test: int = 120,
                n_test_unseen_tools: int = 60, level: str = "full") -> dict[str, list[dict]]:
    """The whole suite at ``level`` (see `LEVELS`): ``{split: records}`` for every split in `SPLITS`."""
    sizes = {"train": n_train, "test": n_test, "test_unseen_tools": n_test_unseen_tools}
    return {split: build_split(split, sizes[split], seed, level) for split in SPLITS}


def export_suite(out_dir: str, seed: int = 0) -> dict[str, int]:
    """Write the suite as ``out_dir/<split>.jsonl`` (all splits or, on failure, none); returns the
    record count per split."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suite = build_suite(seed)
    write_files({out / f"{split}.jsonl": jsonl_text(records) for split, records in suite.items()})
    return {split: len(records) for split, records in suite.items()}


# Scored as our own data: Tool-N1's exact match, with its format rule.
TASK = Task(NAME, exact_match, needs_think=True)
