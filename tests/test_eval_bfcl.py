"""BFCL scoring: our verdicts against the official checker, and the leaderboard's aggregates.

Every item of every single-turn category is scored (about 1 s for all 3,641): no subsampling.
"""

import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolexpander.errors import UserError
from toolexpander.evaluation.scoring import score_item
from toolexpander.prompts import render_answer
from toolexpander.tasks import bfcl

AST_CATEGORIES = bfcl.NON_LIVE_AST + bfcl.LIVE_AST

# BFCL items whose ground truth contradicts their own function doc: the official checker rejects
# every possible answer, the gold included.
UNSATISFIABLE = {
    "simple_java_36": "ArrayList of 'any' parses to strings, the answer holds 42 and true",
    "simple_java_65": "ArrayList of 'any' parses to strings, the answer holds true",
    "parallel_multiple_12": "answer has 'permeability', not in the doc",
    "parallel_multiple_26": "answer has 'type', not in the doc",
    "live_simple_106-63-0": "doc requires parameters the answer allows no value for",
    "live_simple_112-68-0": "doc requires parameters the answer allows no value for",
    "live_multiple_862-181-3": "answer has 'journey_start_time', not in the doc",
    "live_multiple_964-207-0": "doc requires 'statement', absent from the answer",
}


@pytest.fixture(scope="module")
def loaded(shared_data):
    return {c: r.records for c, r in bfcl.load_categories(shared_data / "bfcl", bfcl.CATEGORIES).items()}


def official_verdict(record: dict, calls: list[dict]) -> bool:
    """The official checker called directly on the decoded calls, as BFCL's runner does."""
    checker = bfcl.official()
    decoded = [{call["name"]: call["arguments"]} for call in calls]
    category = record["category"]
    return checker.ast_checker(
        record["tools"], decoded, record["ground_truth"], bfcl.language(category), category, bfcl.MODEL_NAME
    )["valid"]


@pytest.mark.parametrize("category", AST_CATEGORIES)
def test_gold_agrees_with_official_checker_on_every_item(loaded, category):
    rejected = set()
    for record in loaded[category]:
        ours = score_item(record, render_answer(record["answer"]))["valid"]
        assert ours == official_verdict(record, record["answer"]), record["id"]
        if not ours:
            rejected.add(record["id"])
    assert rejected == {record["id"] for record in loaded[category]} & UNSATISFIABLE.keys()


def _wrong_answers(record: dict) -> dict[str, list[dict] | None]:
    gold = record["answer"]
    first = gold[0]
    return {
        "no_call": [],
        "wrong_name": [{**first, "name": first["name"] + "_x"}, *gold[1:]],
        "no_arguments": [{"name": first["name"], "arguments": {}}, *gold[1:]],
        "extra_call": [*gold, first],
        "unknown_argument": [
            {"name": first["name"], "arguments": {**first["arguments"], "zz_unknown": 1}},
            *gold[1:],
        ],
    }


@pytest.mark.parametrize("category", AST_CATEGORIES)
def test_known_wrong_answers_score_zero_and_agree(loaded, category):
    for record in loaded[category]:
        for kind, calls in _wrong_answers(record).items():
            ours = score_item(record, render_answer(calls))["valid"]
            assert ours == official_verdict(record, calls), (record["id"], kind)
            # a bare call is right when the function has only optional parameters
            assert not ours or kind == "no_arguments", (record["id"], kind)
        assert (
            score_item(record, "I would call a function here.")["error_type"] == "ast_decoder:decoder_failed"
        )


def test_every_category_scores_zero_on_wrong_answers(loaded):
    # the AST categories and live_relevance need a call, the irrelevance ones need none
    for category, records in loaded.items():
        wrong = render_answer([{"name": "f", "arguments": {}}] if category in bfcl.IRRELEVANCE else [])
        assert not any(score_item(r, wrong)["valid"] for r in records), category


@pytest.mark.parametrize(
    ("category", "completion", "valid", "error_type"),
    [
        ("irrelevance", render_answer([]), True, None),
        ("irrelevance", "I cannot help with that.", True, None),
        ("irrelevance", '<tool_call>[{"name": "f"}]</tool_call>', True, None),  # not a call list: no call
        (
            "irrelevance",
            render_answer([{"name": "f", "arguments": {}}]),
            False,
            "irrelevance_error:decoder_success",
        ),
        ("live_relevance", render_answer([{"name": "f", "arguments": {}}]), True, None),
        ("live_relevance", render_answer([]), False, "relevance_error:decoder_failed"),
    ],
)
def test_relevance_categories(category, completion, valid, error_type):
    record = {
        "id": "x",
        "task": "bfcl",
        "category": category,
        "tools": [],
        "answer": [] if category == "irrelevance" else None,
    }
    item = score_item(record, completion)
    assert (item["valid"], item["error_type"]) == (valid, error_type)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), value=json_values)
def test_mutated_arguments_agree_with_official_checker(loaded, data, value):
    category = data.draw(st.sampled_from(AST_CATEGORIES))
    record = data.draw(st.sampled_from(loaded[category]))
    calls = json.loads(json.dumps(record["answer"]))
    call = data.draw(st.sampled_from(calls))
    keys = [*call["arguments"], "zz_new"]
    call["arguments"][data.draw(st.sampled_from(keys))] = value
    assert score_item(record, render_answer(calls))["valid"] == official_verdict(record, calls)


def test_decoded_calls():
    assert bfcl.decoded_calls([{"name": "f", "arguments": {"a": 1}}]) == [{"f": {"a": 1}}]
    assert bfcl.decoded_calls(None) is None
    assert bfcl.decoded_calls([{"name": "f", "arguments": [1]}]) is None
    assert bfcl.decoded_calls([{"name": 3, "arguments": {}}]) is None


def test_prompt_tools_show_bfcl_language_hints(loaded):
    record = loaded["simple_java"][0]
    raw = json.loads(json.dumps(record["tools"]))
    (tool,) = bfcl.prompt_tools(record)
    assert tool["description"].endswith("Note that the provided function is in Java 8 SDK syntax.")
    assert {p["type"] for p in tool["parameters"]["properties"].values()} == {"string"}
    assert record["tools"] == raw  # the checker still reads the untouched docs
    (python_tool,) = bfcl.prompt_tools(loaded["simple_python"][0])
    assert python_tool["description"].endswith("Python 3 syntax.")


def test_checker_import_uses_stand_in_and_scratch_root():
    bfcl.official()
    stand_in = sys.modules["bfcl_eval.constants.model_config"]
    assert stand_in.MODEL_CONFIG_MAPPING["any/model"].underscore_to_dot is False
    assert "bfcl_eval.model_handler" not in sys.modules  # no model handlers (and their SDKs) imported
    root = Path(os.environ["BFCL_PROJECT_ROOT"])
    assert (root / "result").is_dir() and (root / "score").is_dir()


def _stats(accuracy: float, n: int) -> dict:
    return {"accuracy": accuracy, "n": n, "correct": round(accuracy * n)}


def test_aggregates_follow_the_leaderboard():
    categories = {c: _stats(1.0, 10) for c in AST_CATEGORIES}
    categories["simple_java"] = _stats(0.4, 10)  # simple = (1 + 0.4 + 1) / 3 = 0.8
    categories["parallel"] = _stats(0.6, 10)
    categories["live_simple"] = _stats(0.5, 100)  # live = (50 + 30) / 130
    categories["live_multiple"] = _stats(1.0, 30)
    summary, notes = bfcl.aggregates(categories)
    non_live = (0.8 + 1.0 + 0.6 + 1.0) / 4
    live = (50 + 30 + 10 + 10) / 150
    assert summary == pytest.approx({"non_live": non_live, "live": live, "overall": (non_live + live) / 2})
    assert notes == []


def test_aggregates_left_out_when_categories_missing():
    summary, notes = bfcl.aggregates({c: _stats(1.0, 4) for c in bfcl.LIVE_AST})
    assert summary == {"live": 1.0}
    assert notes[0].startswith("non_live left out: not run: simple_python") and "overall left out" in notes[1]


def test_checker_exception_is_a_wrong_answer():
    doc = {
        "name": "f",
        "description": "",
        "parameters": {"type": "dict", "properties": {"s": {"type": "Set"}}, "required": ["s"]},
    }
    record = {
        "id": "simple_java_x",
        "task": "bfcl",
        "category": "simple_java",
        "tools": [doc],
        "ground_truth": [{"f": {"s": ["a"]}}],
    }
    item = score_item(record, render_answer([{"name": "f", "arguments": {"s": "new HashSet<>()"}}]))
    assert (item["valid"], item["error_type"]) == (False, "checker_error")
    assert item["error"][0].startswith("NotImplementedError")


def test_scoring_follows_the_task_name_not_the_keys():
    record = {"id": "x", "task": "generic", "category": "irrelevance", "tools": [], "answer": []}
    assert score_item(record, "I cannot help with that.")["error_type"] == "format:no_think"  # BFCL: correct
    assert score_item({**record, "task": "bfcl"}, "I cannot help with that.")["valid"]
    with pytest.raises(UserError, match="unknown task 'nope'"):
        score_item({**record, "task": "nope"}, "")
