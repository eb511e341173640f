"""The demonstrations a hard item is posed with (SPEC §1, "demonstrations").

Sources are the training set's gold answers and verified-correct rollouts of the policy
itself (which carry the model's own think text). For a task, candidates are ranked by

1. the tool names they call that the task's gold answer calls, then those the task offers
   (more shared names first);
2. BM25 similarity (`bm25s`, lower-cased word tokens) of their query to the task's query;
3. a fixed order drawn from ``seed``, so ties never depend on dict or set order.

The task itself (same id) is never a candidate, nor is a demonstration repeated. ``select``
runs for every hard item of every step, so both indexes are built once: a map from tool name to
the items calling it, and bm25s's sparse index of the queries, which scores the whole bank in
one sparse product.
"""

from __future__ import annotations

import random
import re
import sys
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence

import numpy as np


def _import_bm25s():
    """bm25s without JAX. Where JAX is installed, bm25s runs a JAX computation on import, which
    takes most of the GPU's memory beside torch's, or crashes (seen on an H200 image with JAX's CUDA
    plugin); its top-k over a few hundred scores needs nothing but NumPy."""
    if "jax" in sys.modules:  # the user's program already runs JAX: leave it be
        import bm25s

        return bm25s
    sys.modules["jax"] = None  # makes `import jax` raise ImportError
    try:
        import bm25s
    finally:
        del sys.modules["jax"]
    return bm25s


bm25s = _import_bm25s()

from toolexpander.data.schema import query_text
from toolexpander.prompts import gold_demo

DEMO_SOURCES = ("gold", "rollouts")

_WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens: what BM25 matches on."""
    return _WORD.findall(text.lower())


def _called_names(task: dict) -> set[str]:
    return {call["name"] for call in task["answer"] or ()}


class DemoBank:
    """Few-shot demonstrations for hard items, drawn from gold answers and harvested rollouts.

    ``tasks`` are records (`toolexpander.data.schema`); those whose ``answer`` is None have
    no gold answer and are left out. A demonstration is ``{"query", "completion",
    "source_id", "kind"}`` with ``kind`` "gold" or "rollout", ready for
    `toolexpander.prompts.PromptSpec.render` in either prompt format: a gold one also carries its ``calls``
    and ``think``, which a native prompt hands the chat template as structured ``tool_calls``; a
    rollout is the policy's own reply, shown as it wrote it.
    """

    def __init__(
        self,
        tasks: Sequence[dict],
        *,
        sources: Sequence[str] = DEMO_SOURCES,
        seed: int = 0,
        max_rollouts_per_item: int = 4,
    ):
        unknown = [s for s in sources if s not in DEMO_SOURCES]
        if unknown or not sources:
            raise ValueError(f"sources must be a non-empty subset of {DEMO_SOURCES}, got {tuple(sources)}")
        if max_rollouts_per_item < 1:
            raise ValueError(f"max_rollouts_per_item must be at least 1, got {max_rollouts_per_item}")
        self.sources = tuple(sources)
        self.max_rollouts_per_item = max_rollouts_per_item
        self._tasks = [task for task in tasks if task["answer"] is not None]
        self._index = {}
        for i, task in enumerate(self._tasks):
            if self._index.setdefault(task["id"], i) != i:
                raise ValueError(f"duplicate task id {task['id']!r} in the demonstration bank")
        self._queries = [query_text(task) for task in self._tasks]
        self._bm25 = bm25s.BM25()
        if self._tasks:
            self._bm25.index([tokenize(query) for query in self._queries], show_progress=False)
        by_tool = defaultdict(list)
        for i, task in enumerate(self._tasks):
            for name in _called_names(task):
                by_tool[name].append(i)
        self._by_tool = {name: np.asarray(items, dtype=np.int64) for name, items in by_tool.items()}
        order = list(range(len(self._tasks)))
        random.Random(seed).shuffle(order)
        self._order = np.asarray(order, dtype=np.int64)  # items in tie-break order
        self._rank = np.empty_like(self._order)  # item -> its place in that order
        self._rank[self._order] = np.arange(len(order))
        self._rollouts: dict[str, deque[str]] = {}
        self._has_rollout = np.zeros(len(self._tasks), dtype=bool)

    def __len__(self) -> int:
        return len(self._tasks)

    def add_rollout(self, item_id: str, completion: str) -> None:
        """Keep a verified-correct ``completion`` of the policy for ``item_id`` (newest last)."""
        if "rollouts" not in self.sources:
            return
        if item_id not in self._index:
            raise KeyError(f"no task with id {item_id!r} in the demonstration bank")
        self._rollouts.setdefault(item_id, deque(maxlen=self.max_rollouts_per_item)).append(completion)
        self._has_rollout[self._index[item_id]] = True

    def select(self, task: dict, k: int) -> list[dict]:
        """Up to ``k`` demonstrations for ``task``, best first (fewer when the bank runs out)."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        demos: list[dict] = []
        seen: set[tuple[str, str]] = set()
        if k == 0:
            return demos
        for i in self._ranked(task):
            demo = self._demo(i)
            key = (demo["query"], demo["completion"])
            if key not in seen:
                seen.add(key)
                demos.append(demo)
                if len(demos) == k:
                    break
        return demos

    def _demo(self, i: int) -> dict:
        task = self._tasks[i]
        rollouts = self._rollouts.get(task["id"])
        if rollouts:
            return {
                "query": self._queries[i],
                "completion": rollouts[-1],
                "source_id": task["id"],
                "kind": "rollout",
            }
        return {**gold_demo(task), "source_id": task["id"], "kind": "gold"}

    def _ranked(self, task: dict) -> Iterator[int]:
        """Candidate items for ``task``, best first, lazily: tool-sharing tiers, then the rest."""
        left = self._has_rollout.copy() if "gold" not in self.sources else np.ones(len(self), dtype=bool)
        own = self._index.get(task["id"])
        if own is not None:
            left[own] = False
        words = tokenize(query_text(task))
        scores = self._bm25.get_scores(words) if words and len(self) else np.zeros(len(self))
        for tier in self._tool_tiers(task, left):
            left[tier] = False
            yield from self._lexical_order(scores, tier)
        yield from self._lexical_order(scores, np.flatnonzero(left))

    def _tool_tiers(self, task: dict, allowed: np.ndarray) -> list[np.ndarray]:
        """Allowed items calling a tool that the task calls or offers, best tier first: most
        names shared with the task's calls, then most shared with its other offered tools."""
        called = _called_names(task)
        offered = {tool["name"] for tool in task["tools"]} - called
        lists = {name: self._by_tool[name] for name in called | offered if name in self._by_tool}
        if not lists:
            return []
        items = np.unique(np.concatenate(list(lists.values())))
        items = items[allowed[items]]
        shared_called, shared_offered = np.zeros(len(items), dtype=int), np.zeros(len(items), dtype=int)
        for name, holders in lists.items():
            hit = np.isin(items, holders, assume_unique=True)
            if name in called:
                shared_called += hit
            else:
                shared_offered += hit
        keys = shared_called * (len(offered) + 1) + shared_offered  # orders (called, offered) pairs
        return [items[keys == key] for key in np.unique(keys)[::-1]]

    def _lexical_order(self, scores: np.ndarray, items: np.ndarray) -> Iterator[int]:
        """``items`` by BM25 score, highest first; ties in the seeded order."""
        yield from items[np.lexsort((self._rank[items], -scores[items]))].tolist()

    def state_dict(self) -> dict:
        """JSON-serialisable state: the harvested rollouts (gold demos are rebuilt from the tasks)."""
        return {"rollouts": {item_id: list(rollouts) for item_id, rollouts in self._rollouts.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict` output (keeping the newest ``max_rollouts_per_item`` of each item)."""
        unknown = [item_id for item_id in state["rollouts"] if item_id not in self._index]
        if unknown:
            raise KeyError(f"the saved rollouts name tasks that are not in this bank: {unknown[:5]}")
        self._rollouts = {}
        self._has_rollout[:] = False
        for item_id, completions in state["rollouts"].items():
            for completion in completions:
                self.add_rollout(item_id, completion)
