"""The hard-sample shot schedule, its ledger and metrics, and the exponential LR factor."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolexpander.hard_sampling.policy import HardSampleTracker, ShotSchedule, exponential_lr_factor

G = 8


def play(tracker: HardSampleTracker, successes: list[int], item_id: str = "a", num_generations: int = G):
    """Serve one item with the shots the tracker asks for, once per result; return the ledger."""
    return [
        tracker.record(item_id, s, num_generations, step=step, shots=tracker.shots_for(item_id))
        for step, s in enumerate(successes)
    ]


@pytest.mark.parametrize(
    ("schedule", "successes", "served", "final"),
    [
        pytest.param({}, [4], [0], 0, id="easy item stays zero-shot"),
        pytest.param({}, [0, 0, 0, 0, 0], [0, 1, 2, 3, 3], 3, id="escalate 0-1-2-3 and stop at the cap"),
        pytest.param({}, [0, 0, 0, 0, 5, 5, 5, 5], [0, 1, 2, 3, 3, 2, 1, 0], 0, id="fade 3-2-1-0"),
        pytest.param({}, [0, 0, 3, 0], [0, 1, 2, 1], 2, id="hard again after fading escalates again"),
        pytest.param({"fading": False}, [0, 0, 3, 3, 8], [0, 1, 2, 2, 2], 2, id="no fading keeps k"),
        pytest.param({"fade_min_successes": 3}, [0, 0, 2, 2, 3], [0, 1, 2, 2, 2], 1, id="fade needs 3 of G"),
        pytest.param({"hard_max_correct": 1}, [1, 1, 2], [0, 1, 2], 1, id="1 of G still hard"),
        pytest.param({"start": 2, "cap": 2}, [0, 0, 1, 1], [0, 2, 2, 1], 0, id="graded fade 2-1-0 of SPEC 5"),
        pytest.param({"start": 2, "step": 2, "cap": 5}, [0, 0, 0, 0], [0, 2, 4, 5], 5, id="start 2 step 2"),
        pytest.param({"step": 0}, [0, 0, 0], [0, 1, 1], 1, id="step 0 keeps start"),
    ],
)
def test_policy_table(schedule, successes, served, final):
    schedule = ShotSchedule(**schedule)
    tracker = HardSampleTracker(schedule)
    rows = play(tracker, successes)
    assert [row["shots"] for row in rows] == served
    assert rows[-1]["next_shots"] == tracker.shots_for("a") == final
    assert [row["round"] for row in rows] == list(range(len(successes)))
    assert [row["hard"] for row in rows] == [s <= schedule.hard_max_correct for s in successes]


def test_ledger_row():
    row = HardSampleTracker(ShotSchedule()).record("x", 0, 10, step=7, shots=0)
    assert row == {
        "id": "x",
        "step": 7,
        "round": 0,
        "shots": 0,
        "successes": 0,
        "num_generations": 10,
        "hard": True,
        "next_shots": 1,
    }


def test_next_shots_follow_the_shots_actually_served():
    """A re-rolled group is a second record in the same step, with its own shots."""
    tracker = HardSampleTracker(ShotSchedule())
    first = tracker.record("a", 0, G, step=3, shots=0)
    reroll = tracker.record("a", 0, G, step=3, shots=first["next_shots"])
    assert (first["round"], reroll["round"]) == (0, 1)
    assert reroll["next_shots"] == 2
    assert tracker.record("a", 0, G, step=4, shots=0)["next_shots"] == 1  # served without demos after all


def test_items_are_independent():
    tracker = HardSampleTracker(ShotSchedule())
    play(tracker, [0, 0], item_id="a")
    play(tracker, [5], item_id="b")
    assert (tracker.shots_for("a"), tracker.shots_for("b"), tracker.shots_for("never seen")) == (2, 0, 0)


def test_unsolved_counts_items_hard_at_the_cap():
    tracker = HardSampleTracker(ShotSchedule(cap=2))
    play(tracker, [0, 0, 0], item_id="stuck")  # hard at 0, 1, then 2 = cap
    play(tracker, [0, 0], item_id="rising")  # hard at 0 and 1: not at the cap yet
    play(tracker, [0, 0, 0, 1], item_id="solved")  # hard at the cap, then solved there
    assert tracker.summary([])["hard/unsolved"] == 1
    tracker.record("rising", 0, G, step=9, shots=tracker.shots_for("rising"))
    assert tracker.summary([])["hard/unsolved"] == 2
    tracker.record("stuck", 3, G, step=10, shots=tracker.shots_for("stuck"))
    assert tracker.summary([])["hard/unsolved"] == 1


def test_summary_of_a_batch():
    tracker = HardSampleTracker(ShotSchedule(cap=1))
    rows = [
        tracker.record("a", 0, 4, step=0, shots=0),
        tracker.record("b", 4, 4, step=0, shots=1),
        tracker.record("c", 0, 4, step=0, shots=1),  # hard at the cap
        tracker.record("d", 2, 4, step=0, shots=1),
    ]
    assert tracker.summary(rows) == {
        "hard/ratio": 2 / 4,
        "hard/solved_ratio": 1 / 4,
        "hard/demo_share": 3 / 4,
        "hard/mean_shots": 3 / 4,
        "hard/unsolved": 1.0,
    }
    assert tracker.summary([])["hard/ratio"] == 0.0


def test_state_dict_round_trip_through_json():
    schedule = ShotSchedule(start=1, cap=3, fade_min_successes=2)
    tracker = HardSampleTracker(schedule)
    for item_id, results in {"a": [0, 0, 0, 0], "b": [0, 2], "c": [5]}.items():
        play(tracker, results, item_id=item_id)
    restored = HardSampleTracker(ShotSchedule(start=1, cap=3, fade_min_successes=2))
    restored.load_state_dict(json.loads(json.dumps(tracker.state_dict())))
    assert restored.state_dict() == tracker.state_dict()
    assert restored.summary([]) == tracker.summary([])
    for item_id, results in {"a": [1, 0, 3, 3], "b": [0, 0, 0, 0], "c": [0], "d": [0, 1]}.items():
        assert play(restored, results, item_id=item_id) == play(tracker, results, item_id=item_id)


def test_load_refuses_another_schedule():
    state = HardSampleTracker(ShotSchedule(cap=3)).state_dict()
    with pytest.raises(ValueError, match="saved with schedule"):
        HardSampleTracker(ShotSchedule(cap=4)).load_state_dict(state)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": 0}, "start must be at least 1"),
        ({"step": -1}, "step must be >= 0"),
        ({"start": 3, "cap": 2}, r"cap \(2\) must be >= start \(3\)"),
        ({"fade_min_successes": 0}, "fade_min_successes must be at least 1"),
        ({"hard_max_correct": -1}, "hard_max_correct must be >= 0"),
    ],
)
def test_schedule_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShotSchedule(**kwargs)


@pytest.mark.parametrize(
    ("successes", "num_generations", "shots", "message"),
    [
        (0, 0, 0, "num_generations must be at least 1"),
        (-1, 8, 0, r"successes must be in \[0, 8\]"),
        (9, 8, 0, r"successes must be in \[0, 8\]"),
        (0, 8, -1, r"shots must be in \[0, cap=3\]"),
        (0, 8, 4, r"shots must be in \[0, cap=3\]"),
    ],
)
def test_record_validation(successes, num_generations, shots, message):
    tracker = HardSampleTracker(ShotSchedule())
    with pytest.raises(ValueError, match=message):
        tracker.record("a", successes, num_generations, step=0, shots=shots)
    assert tracker.state_dict()["items"] == {}  # a refused record changes nothing


@st.composite
def schedules(draw):
    start = draw(st.integers(1, 3))
    return ShotSchedule(
        start=start,
        step=draw(st.integers(0, 2)),
        cap=start + draw(st.integers(0, 3)),
        fading=draw(st.booleans()),
        fade_min_successes=draw(st.integers(1, 4)),
        hard_max_correct=draw(st.integers(0, 2)),
    )


@given(
    schedule=schedules(),
    num_generations=st.integers(1, 10),
    visits=st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 1)), max_size=40),
)
def test_shots_and_metrics_stay_in_range(schedule, num_generations, visits):
    tracker = HardSampleTracker(schedule)
    rows = []
    for step, (item_id, fraction) in enumerate(visits):
        served = tracker.shots_for(item_id)
        row = tracker.record(
            item_id, round(fraction * num_generations), num_generations, step=step, shots=served
        )
        rows.append(row)
        assert 0 <= row["next_shots"] <= schedule.cap
        if row["hard"]:  # hard: demonstrations, more of them unless at the cap or the step is 0
            assert row["next_shots"] >= max(served, 1)
            assert row["next_shots"] > served or schedule.step == 0 or served == schedule.cap
        else:  # not hard: never more shots, and at most one fewer
            assert served - 1 <= row["next_shots"] <= served
    metrics = tracker.summary(rows)
    for name in ("hard/ratio", "hard/solved_ratio", "hard/demo_share"):
        assert 0.0 <= metrics[name] <= 1.0
    assert 0.0 <= metrics["hard/mean_shots"] <= schedule.cap
    assert 0 <= metrics["hard/unsolved"] <= len({item_id for item_id, _ in visits})


@pytest.mark.parametrize(
    ("t", "gamma", "decay_steps", "expected"),
    [
        (0, 0.5, 10, 1.0),
        (10, 0.5, 10, 0.5),
        (20, 0.5, 10, 0.25),
        (5, 0.25, 10, 0.5),
        (2.5, 0.9, 2.5, 0.9),
        (1000, 1.0, 3, 1.0),
    ],
)
def test_exponential_lr_factor(t, gamma, decay_steps, expected):
    assert exponential_lr_factor(t, gamma, decay_steps) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("t", "gamma", "decay_steps", "message"),
    [
        (1, 0.0, 10, "gamma must be in"),
        (1, 1.5, 10, "gamma must be in"),
        (1, 0.5, 0, "decay_steps must be > 0"),
        (-1, 0.5, 10, "must be >= 0"),
    ],
)
def test_exponential_lr_factor_validation(t, gamma, decay_steps, message):
    with pytest.raises(ValueError, match=message):
        exponential_lr_factor(t, gamma, decay_steps)
