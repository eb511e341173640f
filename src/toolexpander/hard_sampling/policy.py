"""Dynamic Multi-Round Hard Sampling: how many demonstrations each training item gets.

A group of G rollouts is *hard* when at most ``hard_max_correct`` of them are correct
(paper: 0 of G), judged on the binary correctness reward, never on the shaped sum. A hard
group teaches nothing under GRPO (zero variance, zero advantage), so the next time that item
is drawn it is posed with few-shot demonstrations. The policy is a small state machine per
item, keyed by the number of shots ``k`` it was last served with:

* hard: ``k = start`` if it had none, else ``min(k + step, cap)`` ("multi-round");
  hard at the cap marks the item *unsolved* until a group of it is solved;
* not hard: with ``fading``, once at least ``fade_min_successes`` answers are correct,
  ``k = max(k - 1, 0)``; evaluation is zero-shot, so demonstrations are withdrawn one at a
  time (SPEC §5: fading 2 -> 0 in one go made items oscillate); otherwise ``k`` stays.

Every item starts at zero shots. `HardSampleTracker` holds this state; the trainer reaches it
through `toolexpander.hard_sampling.sampler.HardSampler`, which asks `HardSampleTracker.shots_for`
when an item is drawn and calls `HardSampleTracker.record` with each group's result; a group
re-rolled with demonstrations inside the same step is simply a second ``record`` call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# A training run's ledger: one JSON line per group posed (item, round, shots, successes, ...), which
# the demo's and the study's reports read back.
LEDGER_FILE = "hard_samples.jsonl"


@dataclass
class ShotSchedule:
    """When an item gets demonstrations, and how many.

    Escalation: `start`, `step`, `cap`. Fading: `fading`, `fade_min_successes`.
    What counts as hard: `hard_max_correct`.
    """

    start: int = field(default=1, metadata={"help": "Shots given the first time an item is found hard."})
    step: int = field(
        default=1, metadata={"help": "Shots added on each further visit while the item stays hard (0: keep)."}
    )
    cap: int = field(default=3, metadata={"help": "Most shots an item is ever given."})
    fading: bool = field(
        default=True,
        metadata={
            "help": "Once an item with k shots is solved, step down to k-1, and so on to zero-shot. "
            "False: keep k shots."
        },
    )
    fade_min_successes: int = field(
        default=1, metadata={"help": "Correct answers out of G a group needs before its item steps down."}
    )
    hard_max_correct: int = field(
        default=0,
        metadata={"help": "A group with at most this many correct answers is hard (paper: 0 of G)."},
    )

    def __post_init__(self) -> None:
        if self.start < 1:
            raise ValueError(f"start must be at least 1 shot, got {self.start}")
        if self.step < 0:
            raise ValueError(f"step must be >= 0, got {self.step}")
        if self.cap < self.start:
            raise ValueError(f"cap ({self.cap}) must be >= start ({self.start})")
        if self.fade_min_successes < 1:
            raise ValueError(f"fade_min_successes must be at least 1, got {self.fade_min_successes}")
        if self.hard_max_correct < 0:
            raise ValueError(f"hard_max_correct must be >= 0, got {self.hard_max_correct}")

    def is_hard(self, successes: int) -> bool:
        """Whether a group with ``successes`` correct answers is hard."""
        return successes <= self.hard_max_correct

    def next_shots(self, shots: int, successes: int) -> int:
        """Shots for the next visit of an item served with ``shots`` that got ``successes``."""
        if self.is_hard(successes):
            return self.start if shots == 0 else min(shots + self.step, self.cap)
        if self.fading and successes >= self.fade_min_successes:
            return max(shots - 1, 0)
        return shots


@dataclass
class _ItemState:
    shots: int = 0  # shots for the next visit
    visits: int = 0  # groups recorded so far
    unsolved: bool = False  # last group was hard at the cap


class HardSampleTracker:
    """Per-item shot counts driven by `ShotSchedule`, plus the ledger rows and metrics of each group.

    >>> tracker = HardSampleTracker(ShotSchedule())
    >>> tracker.record("a", 0, 8, step=0, shots=0)["next_shots"]
    1
    >>> tracker.record("a", 3, 8, step=5, shots=tracker.shots_for("a"))["next_shots"]
    0
    """

    def __init__(self, schedule: ShotSchedule):
        self.schedule = schedule
        self._items: dict[str, _ItemState] = {}

    def seen(self, item_id: str) -> bool:
        """Whether a group of ``item_id`` was ever recorded."""
        return item_id in self._items

    def shots_for(self, item_id: str) -> int:
        """Shots to use the next time ``item_id`` is drawn (0 for items never recorded)."""
        state = self._items.get(item_id)
        return state.shots if state is not None else 0

    def record(self, item_id: str, successes: int, num_generations: int, *, step: int, shots: int) -> dict:
        """Update ``item_id`` from one group served with ``shots`` demonstrations.

        ``successes`` counts binary-correct answers among ``num_generations`` (never the bonus).
        Returns the ledger row ``{"id", "step", "round", "shots", "successes",
        "num_generations", "hard", "next_shots"}``; ``round`` is the 0-based visit index.
        """
        if num_generations < 1:
            raise ValueError(f"num_generations must be at least 1, got {num_generations}")
        if not 0 <= successes <= num_generations:
            raise ValueError(f"successes must be in [0, {num_generations}], got {successes}")
        if not 0 <= shots <= self.schedule.cap:
            raise ValueError(f"shots must be in [0, cap={self.schedule.cap}], got {shots}")
        state = self._items.setdefault(item_id, _ItemState())
        hard = self.schedule.is_hard(successes)
        row = {
            "id": item_id,
            "step": step,
            "round": state.visits,
            "shots": shots,
            "successes": successes,
            "num_generations": num_generations,
            "hard": hard,
            "next_shots": self.schedule.next_shots(shots, successes),
        }
        state.shots = row["next_shots"]
        state.visits += 1
        state.unsolved = hard and shots == self.schedule.cap
        return row

    def unsolved_count(self) -> int:
        """Items whose latest group was hard even with the most shots."""
        return sum(state.unsolved for state in self._items.values())

    def summary(self, rows: list[dict]) -> dict[str, float]:
        """Metrics of one batch of ledger rows (ratios are 0.0 for an empty batch).

        ``hard/ratio``: groups that were hard; ``hard/solved_ratio``: groups all correct;
        ``hard/demo_share``: groups served with demonstrations; ``hard/mean_shots``;
        ``hard/unsolved``: items hard at the cap, over the whole tracker.
        """
        n = len(rows) or 1
        return {
            "hard/ratio": sum(row["hard"] for row in rows) / n,
            "hard/solved_ratio": sum(row["successes"] == row["num_generations"] for row in rows) / n,
            "hard/demo_share": sum(row["shots"] > 0 for row in rows) / n,
            "hard/mean_shots": sum(row["shots"] for row in rows) / n,
            "hard/unsolved": float(self.unsolved_count()),
        }

    def state_dict(self) -> dict:
        """JSON-serialisable state: the schedule it was built with and every item's state."""
        return {"schedule": asdict(self.schedule), "items": {k: asdict(v) for k, v in self._items.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict` output; refuses a state saved under a different schedule."""
        if state["schedule"] != asdict(self.schedule):
            raise ValueError(
                f"the hard-sampling state was saved with schedule {state['schedule']}, "
                f"but this tracker uses {asdict(self.schedule)}"
            )
        self._items = {item_id: _ItemState(**item) for item_id, item in state["items"].items()}


def exponential_lr_factor(step_or_round: float, gamma: float, decay_steps: float) -> float:
    """Learning-rate multiplier ``gamma ** (t / decay_steps)`` of the exponential decay (SPEC §1).

    >>> exponential_lr_factor(20, 0.5, 10)
    0.25
    """
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if decay_steps <= 0:
        raise ValueError(f"decay_steps must be > 0, got {decay_steps}")
    if step_or_round < 0:
        raise ValueError(f"the step or round must be >= 0, got {step_or_round}")
    return gamma ** (step_or_round / decay_steps)
