"""Demonstration selection: tool names first, then BM25, never the item itself, seeded ties."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolexpander.data.schema import make_record
from toolexpander.hard_sampling.demo_bank import DemoBank
from toolexpander.prompts import gold_demo


def task(id, query, calls=(), offered=()):
    """A record that calls ``calls`` (each with one argument) and offers those plus ``offered``."""
    names = list(dict.fromkeys([*calls, *offered]))
    tools = [{"name": name, "parameters": {"type": "object"}} for name in names]
    answer = [{"name": name, "arguments": {"id": id}} for name in calls]
    return make_record(id, [{"role": "user", "content": query}], tools, answer, task="generic")


def ids(demos):
    return [demo["source_id"] for demo in demos]


# Unrelated items that keep every test word's BM25 idf clearly positive.
FILLER = [task(f"filler{i}", f"filler words number {i}", ["other_tool"]) for i in range(12)]

# Against the query "alpha beta gamma delta", a* shares 3 words, b* 2, c* 1, d* none; all
# queries have four words, so BM25 ranks them a > b > c > d without doubt.
LEXICAL = {
    "a": "alpha beta gamma zeta",
    "b": "alpha beta eta theta",
    "c": "alpha iota kappa lam",
    "d": "mu nu xi omicron",
}


def test_same_tool_candidates_come_first():
    bank = DemoBank(
        [
            task("same1", "completely unrelated words here", ["get_weather"]),
            task("other", "weather in paris tomorrow please", ["get_stock"]),
            task("same2", "nothing in common at all", ["get_weather"]),
            *FILLER,
        ]
    )
    query = task("q", "weather in paris tomorrow please", ["get_weather"], offered=["get_stock"])
    assert set(ids(bank.select(query, 2))) == {"same1", "same2"}
    assert ids(bank.select(query, 3))[2] == "other"  # offered-only tool: right after


def test_shared_calls_outrank_offered_tools_and_more_names_win():
    bank = DemoBank(
        [
            task("offered", "alpha beta gamma delta", ["lookup"]),
            task("one", "words of no use", ["search"]),
            task("two", "other words of no use", ["search", "fetch"]),
            task("none", "alpha beta gamma delta", ["unrelated"]),
            *FILLER,
        ]
    )
    query = task("q", "alpha beta gamma delta", ["search", "fetch"], offered=["lookup"])
    assert ids(bank.select(query, 4)) == ["two", "one", "offered", "none"]


@pytest.mark.parametrize(
    ("tool_of_candidates", "expected"),
    [
        ("get_weather", ["a", "b", "c", "d"]),  # all four share the tool: d comes before any filler
        ("no_shared_tool", ["a", "b", "c"]),  # d then ties at 0 with the fillers
    ],
)
def test_bm25_orders_candidates(tool_of_candidates, expected):
    tasks = [task(name, words, [tool_of_candidates]) for name, words in LEXICAL.items()]
    bank = DemoBank([*reversed(tasks), *FILLER])
    query = task("q", "Alpha, beta; gamma delta?", ["get_weather"])
    assert ids(bank.select(query, len(expected))) == expected


def test_three_shared_words_outscore_one_rare_word():
    """BM25 weighs words by rarity and length: three shared words beat one rare one, and a
    shorter query holding them beats a longer one."""
    tasks = [
        task("rare", "zebra", ["t"]),
        task("three", "pear plum kiwi", ["t"]),
        task("four", "pear plum kiwi fig", ["t"]),
        *FILLER[:6],
    ]
    query = task("q", "pear plum kiwi zebra", ["u"])
    assert ids(DemoBank(tasks).select(query, 3)) == ["three", "four", "rare"]


def test_never_the_item_itself_and_k_larger_than_the_bank():
    tasks = [task(f"t{i}", f"query {i} about weather", ["get_weather"]) for i in range(5)]
    bank = DemoBank(tasks)
    demos = bank.select(tasks[2], 10)
    assert sorted(ids(demos)) == ["t0", "t1", "t3", "t4"]
    assert bank.select(tasks[2], 0) == []
    with pytest.raises(ValueError, match="k must be >= 0"):
        bank.select(tasks[2], -1)


def test_gold_demos_and_items_without_answer():
    source = task("s", "convert 5 usd to eur", ["convert"])
    unanswered = {**task("n", "convert 6 usd to eur", ["convert"]), "answer": None}
    bank = DemoBank([source, unanswered])
    assert len(bank) == 1
    assert bank.select(task("q", "convert 7 usd", ["convert"]), 3) == [
        {**gold_demo(source), "source_id": "s", "kind": "gold"}
    ]


def test_identical_demonstrations_are_shown_once():
    twin = {"messages": [{"role": "user", "content": "twin request"}], "answer": []}
    bank = DemoBank([{**task("x", "x"), **twin, "id": "x"}, {**task("y", "y"), **twin, "id": "y"}, *FILLER])
    chosen = ids(bank.select(task("q", "twin request"), 2))
    assert chosen[0] in {"x", "y"} and chosen[1].startswith("filler")


def test_rollouts_are_preferred_newest_first():
    tasks = [task("s", "book a table for two", ["book"]), *FILLER]
    bank = DemoBank(tasks, max_rollouts_per_item=2)
    for completion in ["r1", "r2", "r3"]:
        bank.add_rollout("s", completion)
    demo = bank.select(task("q", "book a table", ["book"]), 1)[0]
    assert demo == {"query": "book a table for two", "completion": "r3", "source_id": "s", "kind": "rollout"}
    assert bank.state_dict() == {"rollouts": {"s": ["r2", "r3"]}}
    with pytest.raises(KeyError, match="no task with id"):
        bank.add_rollout("missing", "r")


def test_sources_restrict_the_demonstrations():
    tasks = [task("s", "book a table", ["book"]), task("t", "book a room", ["book"])]
    query = task("q", "book", ["book"])
    gold_only = DemoBank(tasks, sources=("gold",))
    gold_only.add_rollout("s", "ignored")
    assert [d["kind"] for d in gold_only.select(query, 2)] == ["gold", "gold"]
    assert gold_only.state_dict() == {"rollouts": {}}
    rollouts_only = DemoBank(tasks, sources=("rollouts",))
    assert rollouts_only.select(query, 2) == []
    rollouts_only.add_rollout("t", "mine")
    assert rollouts_only.select(query, 2) == [
        {"query": "book a room", "completion": "mine", "source_id": "t", "kind": "rollout"}
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sources": ()}, "sources must be"),
        ({"sources": ("gold", "web")}, "sources must be"),
        ({"max_rollouts_per_item": 0}, "max_rollouts_per_item"),
    ],
)
def test_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DemoBank(FILLER, **kwargs)


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="duplicate task id 'x'"):
        DemoBank([task("x", "a"), task("x", "b")])


def test_ties_follow_the_seed():
    """Twenty candidates that tie on everything: the order is the seed's, and the same every time."""
    tasks = [task(f"t{i}", f"unique{i}", ["tool"]) for i in range(20)]
    query = task("q", "shared", ["tool"])
    orders = {seed: ids(DemoBank(tasks, seed=seed).select(query, 20)) for seed in (0, 1)}
    assert orders[0] == ids(DemoBank(list(tasks), seed=0).select(query, 20))
    assert orders[0] != orders[1]
    assert sorted(orders[0]) == sorted(orders[1]) == sorted(t["id"] for t in tasks)


def test_state_round_trip_through_json():
    tasks = [task(f"t{i}", f"query {i} about trains", ["train_times"]) for i in range(6)]
    bank = DemoBank(tasks, seed=3)
    bank.add_rollout("t1", "first")
    bank.add_rollout("t4", "second")
    restored = DemoBank(tasks, seed=3)
    restored.load_state_dict(json.loads(json.dumps(bank.state_dict())))
    assert restored.state_dict() == bank.state_dict()
    for t in tasks:
        assert restored.select(t, 3) == bank.select(t, 3)
    with pytest.raises(KeyError, match="not in this bank"):
        restored.load_state_dict({"rollouts": {"elsewhere": ["x"]}})


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(
        st.tuples(
            st.lists(st.sampled_from("abcd"), max_size=2), st.lists(st.sampled_from("uvwxyz"), max_size=4)
        ),
        min_size=1,
        max_size=15,
    ),
    own=st.integers(0, 14),
    k=st.integers(0, 20),
)
def test_selection_properties(items, own, k):
    tasks = [
        task(f"t{i}", " ".join(words) + f" w{i}", sorted(set(calls)))
        for i, (calls, words) in enumerate(items)
    ]
    bank = DemoBank(tasks)
    query = tasks[own % len(tasks)]
    demos = bank.select(query, k)
    chosen = ids(demos)
    assert len(chosen) == min(k, len(tasks) - 1)  # queries are unique, so no demo is a duplicate
    assert len(set(chosen)) == len(chosen) and query["id"] not in chosen
    called = {c["name"] for c in query["answer"]}
    shared = [len(called & {c["name"] for c in tasks[int(i[1:])]["answer"]}) for i in chosen]
    assert shared == sorted(shared, reverse=True)  # more shared tool names always first


def test_the_bank_imports_bm25s_without_jax_which_would_claim_the_gpu(tmp_path):
    import functools
    import os
    import subprocess
    import sys

    # A JAX whose first computation fails, as JAX's CUDA plugin did beside torch on an H200.
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "__init__.py").write_text("from . import lax\n")
    (tmp_path / "jax" / "lax.py").write_text("def top_k(*args):\n    raise RuntimeError('no CUDA for JAX')\n")
    # Our bank first, then the program's own JAX and bm25s: both still work.
    check = (
        "import toolexpander.hard_sampling.demo_bank, jax, bm25s.selection; "
        "assert not bm25s.selection.JAX_IS_AVAILABLE"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{':'.join(sys.path)}"}
    run = functools.partial(subprocess.run, check=False, env=env, capture_output=True, text=True)
    plain = run([sys.executable, "-c", "import bm25s"])
    assert "no CUDA for JAX" in plain.stderr  # the fake JAX does break a plain import
    ours = run([sys.executable, "-c", check])
    assert ours.returncode == 0, ours.stderr
