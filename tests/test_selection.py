"""`hard_sampling.selection`: which groups a step generates again, and the rows of that second pass."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolexpander.hard_sampling.selection import (
    NOT_NEEDED,
    Regeneration,
    group_successes,
    has_variance,
    kept_targets,
    plan_regeneration,
    regeneration_rows,
    reroll_groups,
    zero_variance_groups,
)


@pytest.mark.parametrize(
    ("correct", "size", "successes"),
    [
        pytest.param([1.0, 1.0, 0.0, 0.0], 4, [2], id="one group"),
        pytest.param([1.0, 0.0, 0.0, 0.0, 1.0, 1.0], 3, [1, 2], id="two groups"),
        pytest.param([0.99, 1.5, 0.0, 1.0], 2, [1, 1], id="correct means a reward of at least 1"),
        pytest.param([], 4, [], id="no rows"),
    ],
)
def test_group_successes(correct, size, successes):
    assert group_successes(correct, size) == successes


@pytest.mark.parametrize(
    ("successes", "size", "flat"),
    [
        pytest.param([0, 4, 1, 3], 4, {0, 1}, id="all wrong and all right are flat"),
        pytest.param([2, 2], 4, set(), id="every group varies"),
        pytest.param([0, 1], 1, {0, 1}, id="a group of one never varies"),
    ],
)
def test_zero_variance_groups_are_those_without_variance(successes, size, flat):
    assert zero_variance_groups(successes, size) == flat
    assert {g for g, s in enumerate(successes) if has_variance(s, size)} == set(range(len(successes))) - flat


@pytest.mark.parametrize(
    ("origins", "posed", "now", "rerolled"),
    [
        pytest.param([0, 1], [0, 0], [1, 0], {0}, id="found hard: one shot more"),
        pytest.param([0, 1], [1, 2], [2, 3], {0, 1}, id="escalated"),
        pytest.param([0, 1], [3, 2], [3, 1], set(), id="at the cap, or faded"),
        pytest.param([4, 7], [0, 0], [2, 2], {4, 7}, id="origins, not positions"),
    ],
)
def test_reroll_groups_are_those_posed_with_fewer_shots_than_now(origins, posed, now, rerolled):
    assert reroll_groups(origins, posed, now) == rerolled


def test_reroll_groups_refuses_lists_of_different_lengths():
    with pytest.raises(ValueError):
        reroll_groups([0, 1], [0], [1, 1])


# One process's rows: 3 groups of 2 (global groups 4, 5, 6: the process's offset is 8 rows).
LOCAL = [4, 4, 5, 5, 6, 6]


@pytest.mark.parametrize(
    ("groups", "needed", "width", "rows", "origin", "targets"),
    [
        pytest.param(LOCAL, {5}, 2, [2, 3], [5, 5], [2, 3], id="the needed group only"),
        pytest.param(LOCAL, {4, 6}, 4, [0, 1, 4, 5], [4, 4, 6, 6], [0, 1, 4, 5], id="two groups"),
        pytest.param(
            LOCAL,
            {6},
            6,
            [4, 5, 0, 1, 0, 1],
            [6, 6, -1, -1, -1, -1],
            [4, 5, None, None, None, None],
            id="padded with the first group to what another process needs",
        ),
        pytest.param(
            LOCAL, set(), 2, [0, 1], [-1, -1], [None, None], id="nothing needed here, two rows elsewhere"
        ),
        pytest.param(LOCAL, {1}, 0, [], [], [], id="another process's group"),
        pytest.param(
            [0, 0, 0], {0, 1}, 3, [0, 1, 2], [0, 0, 0], [0, 1, 2], id="a group straddles processes: all rows"
        ),
        pytest.param(
            [0, 1, 1],
            {0},
            3,
            [0, 1, 2],
            [0, -1, -1],
            [0, None, None],
            id="straddling, only the needed rows count",
        ),
    ],
)
def test_plan_regeneration(groups, needed, width, rows, origin, targets):
    plan = plan_regeneration(groups, needed, 2, width)
    assert plan == Regeneration(rows, origin)
    assert plan.targets == targets


def test_plan_regeneration_refuses_a_pass_narrower_than_its_rows():
    with pytest.raises(ValueError, match="4 rows to generate do not fit a pass of 2"):
        plan_regeneration(LOCAL, {4, 5}, 2, width=2)


def test_kept_targets_drop_the_groups_not_kept():
    assert kept_targets([0, 1, 4, 5, None], LOCAL, {6}) == [None, None, 4, 5, None]


@st.composite
def layouts(draw):
    """A multi-process batch: G, the local rows of each process, which global groups are needed."""
    size = draw(st.integers(1, 4))
    processes = draw(st.integers(1, 3))
    straddle = size > 1 and draw(st.booleans())
    n_local = draw(st.integers(1, 3)) * size + (draw(st.integers(1, size - 1)) if straddle else 0)
    n_groups = -(-processes * n_local // size)
    needed = draw(st.sets(st.integers(0, n_groups - 1)))
    layout = [[(p * n_local + i) // size for i in range(n_local)] for p in range(processes)]
    return size, layout, needed


@given(layouts())
def test_every_process_generates_as_many_rows_and_each_needed_row_is_replaced_once(case):
    size, layout, needed = case
    # What the trainer does: each process counts its rows, the widest count (gathered) wins.
    width = max(len(regeneration_rows(groups, needed, size)) for groups in layout)
    plans = [plan_regeneration(groups, needed, size, width) for groups in layout]
    for groups, plan in zip(layout, plans):
        assert len(plan.rows) == len(plan.origin) == width  # TRL gathers the same number from every process
        assert all(0 <= row < len(groups) for row in plan.rows)
        replaced = [t for t in plan.targets if t is not None]
        # Every local row of a needed group is generated again and replaced exactly once; no other is.
        assert sorted(replaced) == [i for i, g in enumerate(groups) if g in needed]
        wanted = len(regeneration_rows(groups, needed, size))
        for row, origin in zip(plan.rows[:wanted], plan.origin):
            assert origin == (groups[row] if groups[row] in needed else NOT_NEEDED)
        # The padding repeats the first group's rows (even a needed one's), its results dropped.
        assert all(row < size for row in plan.rows[wanted:])
        assert set(plan.origin[wanted:]) <= {NOT_NEEDED}
        if len(groups) % size == 0:
            # Whole groups: the pass holds whole groups too (TRL scores them G rows at a time).
            regenerated = [groups[row] for row in plan.rows]
            assert all(len(set(regenerated[i : i + size])) == 1 for i in range(0, width, size))
        else:
            assert plan.rows == list(range(len(groups)))  # straddling: every row, on every process


@given(st.lists(st.integers(0, 4), max_size=8))
def test_a_group_is_refilled_exactly_when_it_has_no_variance(successes):
    flat = zero_variance_groups(successes, 4)
    assert all((g in flat) == (s in (0, 4)) for g, s in enumerate(successes))
