"""The hard-sampling loop of one run, without any framework: pose items, observe groups.

`HardSampler` joins the policy (`HardSampleTracker`: how many shots an item gets) and the
`DemoBank` (which demonstrations). The trainer asks it for each drawn item's prompt and hands
back every group's binary correctness; it returns the ledger rows and the step's metrics.
It holds the whole run's hard-sampling state, saved in every checkpoint.

Every process of a multi-process run owns an identical copy: `observe` must be called with
the groups of *all* processes (gathered), so that each copy takes the same decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

from toolexpander.hard_sampling.demo_bank import DemoBank
from toolexpander.hard_sampling.policy import HardSampleTracker
from toolexpander.prompts import build_messages


class HardSampler:
    """Prompts with demonstrations for hard items, and the bookkeeping of each group."""

    def __init__(
        self,
        tasks: Sequence[dict],
        tracker: HardSampleTracker,
        bank: DemoBank,
        *,
        style: str = "plain",
        use_demos: bool = True,
    ):
        self.tasks = {task["id"]: task for task in tasks}
        self.tracker = tracker
        self.bank = bank
        self.style = style
        self.use_demos = use_demos  # False for the baselines: track hardness, never show demos

    def shots_for(self, item_id: str) -> int:
        return self.tracker.shots_for(item_id) if self.use_demos else 0

    def prompt_for(self, item_id: str, shots: int | None = None) -> list[dict]:
        """The chat prompt for an item, with its current number of demonstrations."""
        task = self.tasks[item_id]
        shots = self.shots_for(item_id) if shots is None else shots
        demos = self.bank.select(task, shots) if shots else ()
        return build_messages(task, style=self.style, demos=demos)

    def observe(
        self,
        ids: Sequence[str],
        shots: Sequence[int],
        correct: Sequence[float],
        completions: Sequence[str],
        num_generations: int,
        step: int,
    ) -> tuple[list[dict], dict[str, float]]:
        """Record one generation batch: rows are G consecutive rollouts per group.

        ``correct`` is the binary correctness of each rollout. Correct rollouts feed the demo
        bank. Returns the ledger rows (one per group) and the metrics of this batch.
        """
        if not len(ids) == len(shots) == len(correct) == len(completions):
            raise ValueError("ids, shots, correct and completions must have one entry per rollout")
        if len(ids) % num_generations:
            raise ValueError(f"{len(ids)} rollouts do not split into groups of {num_generations}")
        rows = []
        for start in range(0, len(ids), num_generations):
            group = range(start, start + num_generations)
            item_id = ids[start]
            if any(ids[i] != item_id for i in group):
                raise ValueError(f"rollouts {start}..{start + num_generations - 1} mix several items")
            successes = sum(1 for i in group if correct[i] >= 1.0)
            for i in group:
                if correct[i] >= 1.0:
                    self.bank.add_rollout(item_id, completions[i])
            rows.append(
                self.tracker.record(item_id, successes, num_generations, step=step, shots=shots[start])
            )
        return rows, self.tracker.summary(rows)

    def state_dict(self) -> dict:
        return {"tracker": self.tracker.state_dict(), "bank": self.bank.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.bank.load_state_dict(state["bank"])
