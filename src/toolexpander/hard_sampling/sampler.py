"""The hard-sampling loop of one run, without any framework: pose items, observe groups.

`HardSampler` joins the policy (`HardSampleTracker`: how many shots an item gets) and the
`DemoBank` (which demonstrations). The trainer asks it for each drawn item's prompt and hands
back every group's binary correctness; it returns the ledger rows and the step's metrics.
It holds the whole run's hard-sampling state, saved in every checkpoint.

Mixed groups (``demo_rollouts=m``): a hard item's group keeps G - m zero-shot rollouts beside its
m rollouts with demonstrations (ICPO poses 1 of 8), so its advantages compare the two and every
group carries a zero-shot baseline. The first m slots of a group hold the demonstrations. The
zero-shot rollouts are then the hardness test (the paper's "no correct answer in the rollouts"):
an item is posed with demonstrations in its m slots from its first visit, and the policy sees
only its zero-shot rollouts, so it is hard until one of those is correct. No visit is spent only
on finding out that an item is hard.

Every process of a multi-process run owns an identical copy: `observe` must be called with
the groups of *all* processes (gathered), so that each copy takes the same decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

from toolexpander.hard_sampling.demo_bank import DemoBank
from toolexpander.hard_sampling.policy import HardSampleTracker
from toolexpander.prompts import PromptSpec


def group_slots(process_index: int, n_local: int, num_generations: int) -> list[int]:
    """Position in its group of each row a process holds: TRL lays the G rollouts of a group out
    contiguously over the global batch, so a group may straddle two processes.

    >>> group_slots(1, 2, 4)  # the second half of group 0
    [2, 3]
    """
    offset = process_index * n_local
    return [(offset + i) % num_generations for i in range(n_local)]


class HardSampler:
    """Prompts with demonstrations for hard items, and the bookkeeping of each group."""

    def __init__(
        self,
        tasks: Sequence[dict],
        tracker: HardSampleTracker,
        bank: DemoBank,
        *,
        spec: PromptSpec | None = None,
        tokenizer=None,
        use_demos: bool = True,
        demo_rollouts: int | None = None,
    ):
        if demo_rollouts is not None and demo_rollouts < 1:
            raise ValueError(f"demo_rollouts must be at least 1 (or None for all), got {demo_rollouts}")
        self.tasks = {task["id"]: task for task in tasks}
        self.tracker = tracker
        self.bank = bank
        self.spec, self.tokenizer = spec, tokenizer  # the run's: what `prompt_for` renders with
        self.use_demos = use_demos  # False for the baselines: track hardness, never show demos
        self.demo_rollouts = demo_rollouts  # None: every rollout of a hard item's group has demos

    def shots_for(self, item_id: str, slot: int = 0) -> int:
        """Shots for the rollout in position ``slot`` (0-based) of ``item_id``'s group.

        >>> from toolexpander.hard_sampling.policy import ShotSchedule
        >>> sampler = HardSampler([], HardSampleTracker(ShotSchedule(start=2)), None, demo_rollouts=1)
        >>> [sampler.shots_for("a", slot) for slot in range(4)]
        [2, 0, 0, 0]
        """
        if not self.use_demos or (self.demo_rollouts is not None and slot >= self.demo_rollouts):
            return 0
        if self.demo_rollouts is not None and not self.tracker.seen(item_id):
            return self.tracker.schedule.start  # hard until its zero-shot rollouts say otherwise
        return self.tracker.shots_for(item_id)

    def prompt_for(self, item_id: str, shots: int | None = None) -> str:
        """The prompt text for an item (`PromptSpec.render`), with its current number of demonstrations."""
        task = self.tasks[item_id]
        shots = self.shots_for(item_id) if shots is None else shots
        demos = self.bank.select(task, shots) if shots else ()
        return self.spec.render(self.tokenizer, task, demos)

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

        ``correct`` is the binary correctness of each rollout; ``shots`` the demonstrations each
        rollout was posed with (a mixed group has some at 0). Correct rollouts feed the demo bank.
        Returns the ledger rows (one per group) and the metrics of this batch: besides the
        tracker's, ``rollouts/correct_zero_shot`` and ``rollouts/correct_with_demos``, the correct
        rate of the rollouts posed without and with demonstrations (each only when there are some).
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
            demo_rollouts = sum(1 for i in group if shots[i] > 0)
            demo_successes = sum(1 for i in group if shots[i] > 0 and correct[i] >= 1.0)
            # Slot 0 carries the group's demonstrations when any rollout of it does. A mixed group is
            # judged on its zero-shot rollouts; the row still reports the whole group.
            judged = (successes - demo_successes, num_generations - demo_rollouts)
            if self.demo_rollouts is None or not judged[1]:
                judged = (successes, num_generations)
            row = self.tracker.record(item_id, *judged, step=step, shots=shots[start])
            row |= {"successes": successes, "num_generations": num_generations}
            row |= {"demo_rollouts": demo_rollouts, "demo_successes": demo_successes}
            rows.append(row)
        metrics = self.tracker.summary(rows)
        for name, posed in (("correct_zero_shot", False), ("correct_with_demos", True)):
            scores = [c >= 1.0 for k, c in zip(shots, correct) if (k > 0) == posed]
            if scores:
                metrics[f"rollouts/{name}"] = sum(scores) / len(scores)
        return rows, metrics

    def state_dict(self) -> dict:
        return {"tracker": self.tracker.state_dict(), "bank": self.bank.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.bank.load_state_dict(state["bank"])
