"""Correctness rewards with a known outcome, for trainer tests (loaded by dotted path, as a user would)."""


def never_correct(completions, **kwargs):
    """Every rollout wrong: every group is hard."""
    return [0.0] * len(completions)


def correct_with_demos(completions, shots, **kwargs):
    """A rollout is correct iff its prompt carried demonstrations (the row's ``shots`` column)."""
    return [float(k > 0) for k in shots]


def bonus_on_first_of_group(completions, bonus=0.01, requires_correct=False, num_generations=4, **kwargs):
    """The bonus for the first rollout of every group of 4, nothing for the others."""
    return [bonus if i % num_generations == 0 else 0.0 for i in range(len(completions))]


def varied_for_first_item(completions, id, shots, **kwargs):
    """Item ``suite-train-0001``: every other rollout correct (a group with variance); any other item:
    correct iff posed with demonstrations. So on a first visit only the other items' groups are flat."""
    return [
        float(i % 2 == 0) if item.endswith("-0001") else float(k > 0)
        for i, (item, k) in enumerate(zip(id, shots))
    ]


def every_other_correct(completions, **kwargs):
    """Rollouts 0, 2, 4, ... correct: every group of an even size has variance, so every step learns."""
    return [float(i % 2 == 0) for i in range(len(completions))]
