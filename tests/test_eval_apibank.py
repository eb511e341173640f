"""API-Bank scoring: exact match of API name and arguments, and finding each layout's files."""

import pytest

from toolexpander.errors import UserError
from toolexpander.evaluation.scoring import evaluate_records, score_item
from toolexpander.prompts import render_answer, render_calls
from toolexpander.tasks import apibank


@pytest.fixture(scope="module")
def records(shared_data):
    return {level: apibank.load_level(shared_data / "api_bank", level).records for level in ("l1", "l2")}


@pytest.mark.parametrize("layout", ["api_bank", "hammer", "toolrl"])
def test_gold_scores_one_in_every_layout(shared_data, layout):
    for level in ("l1", "l2"):
        loaded = apibank.load_level(shared_data / layout, level).records
        _, results = evaluate_records(loaded, {r["id"]: render_calls(r["answer"]) for r in loaded})
        assert results["categories"][f"apibank_{level}"] == {
            "accuracy": 1.0,
            "correct": len(loaded),
            "n": len(loaded),
        }
        assert results["overall"] == 1.0


def test_think_block_is_not_required(records):
    record = records["l1"][0]
    assert score_item(record, render_calls(record["answer"]))["valid"]
    assert score_item(record, render_answer(record["answer"]))["valid"]


def _mutations(call: dict) -> dict[str, tuple[list[dict], str]]:
    key = next(iter(call["arguments"]))
    value = call["arguments"][key]
    return {
        "name": ([{**call, "name": call["name"] + "X"}], "wrong_name"),
        "value": ([{**call, "arguments": {**call["arguments"], key: f"{value}!"}}], "wrong_arguments"),
        "missing": (
            [{**call, "arguments": {k: v for k, v in call["arguments"].items() if k != key}}],
            "wrong_arguments",
        ),
        "extra": ([{**call, "arguments": {**call["arguments"], "zz": "1"}}], "wrong_arguments"),
        "twice": ([call, call], "wrong_count"),
        "none": ([], "wrong_count"),
    }


@pytest.mark.parametrize("level", ["l1", "l2"])
def test_known_wrong_answers_score_zero(records, level):
    for record in records[level]:
        (call,) = record["answer"]
        if not call["arguments"]:
            continue
        for kind, (calls, error_type) in _mutations(call).items():
            item = score_item(record, render_answer(calls))
            assert (item["valid"], item["error_type"]) == (False, error_type), (record["id"], kind)
        assert score_item(record, "API-Request: [X()]")["error_type"] == "decoder_failed"


def test_values_compare_as_json():
    record = {"id": "a", "task": "apibank", "category": "apibank_l1", "answer": [{"name": "f", "arguments": {"n": "5"}}]}
    assert not score_item(record, render_calls([{"name": "f", "arguments": {"n": 5}}]))["valid"]
    assert score_item(record, render_calls([{"name": "f", "arguments": {"n": "5"}}]))["valid"]


@pytest.mark.parametrize(
    ("folder", "level", "expected"),
    [
        ("api_bank", "l2", "api_bank/test-data/level-2-api.json"),
        ("api_bank/test-data", "l1", "api_bank/test-data/level-1-api.json"),
        ("hammer", "l1", "hammer/data/test/original/apibank_l1.json"),
        ("toolrl", "l3", "toolrl/benchmarks/API-Bank/level-3-api_processed.json"),
    ],
)
def test_find_level_file(shared_data, folder, level, expected):
    assert apibank.find_level_file(shared_data / folder, level) == shared_data / expected


@pytest.mark.parametrize(
    ("folder", "level", "message"),
    [
        ("api_bank", "l3", "no API-Bank l3 file"),
        ("nowhere", "l1", "clone"),
        ("api_bank", "l9", "unknown API-Bank level"),
    ],
)
def test_find_level_file_errors(shared_data, folder, level, message):
    with pytest.raises(UserError, match=message):
        apibank.find_level_file(shared_data / folder, level)
