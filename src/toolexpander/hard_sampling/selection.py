"""Which groups of a step are generated a second time, and which rows that second pass holds.

Two policies pose some groups again within the step, before the loss:
- the re-roll (`reroll_all_fail`): a group whose item the pass just found hard, and which now has
  more demonstrations than the group was posed with (`reroll_groups`), is posed again at once;
- DAPO's dynamic sampling (`mode=dapo_filter`): a group whose rollouts all agree (all correct or
  all wrong: zero variance, so zero advantage; `zero_variance_groups`) is replaced by a group of a
  fresh prompt, kept only if it has variance (`has_variance`).

Rows are the rollouts of one process, G consecutive rows per group; ``groups[i]`` is the global group
(of the step's batch, over all processes) of local row ``i``. A second pass (`plan_regeneration`)
generates only the rows of the groups needed, padded so that every process generates as many rows
(TRL gathers rewards across processes). Pure Python: the trainer gathers the counts and generates.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

NOT_NEEDED = -1  # the origin of a row whose results are dropped (padding, or a group not needed)


def group_successes(correct: Sequence[float], size: int) -> list[int]:
    """Correct rollouts (reward at least 1) of each group of ``size`` consecutive rows.

    >>> group_successes([1.0, 0.0, 0.0, 1.0, 1.0, 0.5], 3)
    [1, 2]
    """
    return [sum(c >= 1.0 for c in correct[i : i + size]) for i in range(0, len(correct), size)]


def has_variance(successes: int, size: int) -> bool:
    """Whether a group of ``size`` rollouts with ``successes`` correct ones has a non-zero advantage."""
    return 0 < successes < size


def zero_variance_groups(successes: Sequence[int], size: int) -> set[int]:
    """The groups (positions in ``successes``) whose rollouts are all correct or all wrong.

    >>> sorted(zero_variance_groups([0, 2, 4, 1], 4))
    [0, 2]
    """
    return {g for g, s in enumerate(successes) if not has_variance(s, size)}


def reroll_groups(
    origins: Sequence[int], posed_shots: Sequence[int], current_shots: Sequence[int]
) -> set[int]:
    """The groups to pose again at once: those whose item now gets more demonstrations than the group
    was posed with (the pass just found it hard). One entry per group: its origin, the shots its first
    rollout was posed with, and the shots the hard sampler gives the item now.

    >>> sorted(reroll_groups([0, 1, 2], [0, 1, 3], [1, 1, 3]))
    [0]
    """
    return {o for o, posed, now in zip(origins, posed_shots, current_shots, strict=True) if now > posed}


def regeneration_rows(groups: Sequence[int], needed: Collection[int], size: int) -> list[int]:
    """The local rows a second pass must generate: those of the ``needed`` groups, or all of them when
    the process's rows do not hold whole groups (a group straddles processes: every process then
    generates all its rows, so all generate as many).

    >>> regeneration_rows([0, 0, 1, 1], {1}, 2), regeneration_rows([0, 0, 0], {1}, 2)
    ([2, 3], [0, 1, 2])
    """
    if len(groups) % size:
        return list(range(len(groups)))
    return [i for i, g in enumerate(groups) if g in needed]


@dataclass(frozen=True)
class Regeneration:
    """A second generation pass on one process: the local rows it poses again, in order, and the
    global group each stands for (`NOT_NEEDED`: generated only so that every process generates as
    many rows; its results are dropped)."""

    rows: list[int]
    origin: list[int]

    @property
    def targets(self) -> list[int | None]:
        """The local row each row of the pass replaces (None: it replaces none)."""
        return [row if origin != NOT_NEEDED else None for row, origin in zip(self.rows, self.origin)]


def plan_regeneration(groups: Sequence[int], needed: Collection[int], size: int, width: int) -> Regeneration:
    """The rows of `regeneration_rows`, padded to ``width`` rows (the most any process generates) with
    repeats of the first group's rows, whose results are dropped.

    >>> plan = plan_regeneration([0, 0, 1, 1], {1}, 2, width=4)
    >>> plan.rows, plan.origin, plan.targets
    ([2, 3, 0, 1], [1, 1, -1, -1], [2, 3, None, None])
    """
    rows = regeneration_rows(groups, needed, size)
    if width < len(rows):
        raise ValueError(f"{len(rows)} rows to generate do not fit a pass of {width}")
    padding = [i % size for i in range(width - len(rows))]
    origin = [groups[i] if groups[i] in needed else NOT_NEEDED for i in rows] + [NOT_NEEDED] * len(padding)
    return Regeneration(rows + padding, origin)


def kept_targets(
    targets: Sequence[int | None], groups: Sequence[int], kept: Collection[int]
) -> list[int | None]:
    """``targets`` (`Regeneration.targets`) left only where the row's group is ``kept`` (DAPO keeps a
    fresh group with variance; the others keep their first pass).

    >>> kept_targets([2, 3, None], [0, 0, 1, 1], {0})
    [None, None, None]
    """
    return [t if t is not None and groups[t] in kept else None for t in targets]
