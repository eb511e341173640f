"""The benchmark loaders (`toolexpander.tasks.bfcl`, `toolexpander.tasks.apibank`) on the shared copies
of BFCL and API-Bank."""

import json
from pathlib import Path

import pytest

from toolexpander.data.formats import detect_format, read_rows
from toolexpander.data.schema import record_errors
from toolexpander.errors import UserError
from toolexpander.prompts import build_messages
from toolexpander.tasks import FORMATS
from toolexpander.tasks.apibank import load_file, parse_api_request
from toolexpander.tasks.bfcl import load_bfcl

OFFICIAL_L1 = "api_bank/test-data/level-1-api.json"
OFFICIAL_L2 = "api_bank/test-data/level-2-api.json"
HAMMER_L1 = "hammer/data/test/original/apibank_l1.json"
HAMMER_L2 = "hammer/data/test/original/apibank_l2.json"
TOOLRL_L1 = "toolrl/benchmarks/API-Bank/level-1-api_processed.json"
TOOLRL_L2 = "toolrl/benchmarks/API-Bank/level-2-api_processed.json"
TOOLRL_L3 = "toolrl/benchmarks/API-Bank/level-3-api_processed.json"
NOT_OFFERED = "which is not among the offered tools"


def _read_jsonl(path: Path) -> dict[str, dict]:
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize(
    ("category", "count"), [("simple_python", 400), ("live_multiple", 1053), ("parallel_multiple", 200)]
)
def test_bfcl_counts_and_ground_truth_kept(shared_data, category, count):
    path = shared_data / "bfcl" / f"BFCL_v4_{category}.json"
    result = load_bfcl(path)
    assert (len(result.records), result.problems) == (count, [])
    truths = _read_jsonl(shared_data / "bfcl" / "possible_answer" / path.name)
    questions = _read_jsonl(path)
    for record in result.records:
        assert record_errors(record) == []
        assert record["category"] == category
        assert record["ground_truth"] == truths[record["id"]]["ground_truth"]
        assert record["tools"] == questions[record["id"]]["function"]


def test_bfcl_gold_takes_first_allowed_value(shared_data):
    records = {r["id"]: r for r in load_bfcl(shared_data / "bfcl" / "BFCL_v4_simple_python.json").records}
    # ground truth: {"base": [10], "height": [5], "unit": ["units", ""]}
    assert records["simple_python_0"]["answer"] == [
        {"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5, "unit": "units"}}
    ]
    assert records["simple_python_0"]["messages"] == [
        {
            "role": "user",
            "content": "Find the area of a triangle with a base of 10 units and height of 5 units.",
        }
    ]


def _write_bfcl(folder: Path, category: str, items: list, truths: list | None) -> Path:
    path = folder / f"BFCL_v4_{category}.json"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in items))
    if truths is not None:
        (folder / "possible_answer").mkdir(exist_ok=True)
        (folder / "possible_answer" / path.name).write_text("".join(json.dumps(t) + "\n" for t in truths))
    return path


def _item(id, properties, required=()):
    doc = {"type": "dict", "properties": properties, "required": list(required)}
    return {
        "id": id,
        "question": [[{"role": "user", "content": "q"}]],
        "function": [{"name": "f", "description": "", "parameters": doc}],
    }


@pytest.mark.parametrize(
    ("category", "properties", "required", "allowed", "expected"),
    [
        ("simple_python", {"a": {"type": "string"}}, [], {"a": ["", "x"]}, {"a": "x"}),
        ("simple_python", {"a": {"type": "string"}}, [], {"a": [""]}, {}),
        ("simple_python", {"a": {"type": "string"}}, ["a"], {"a": [""]}, {"a": ""}),
        (
            "simple_python",
            {"d": {"type": "dict"}},
            [],
            {"d": [{"k": ["v", "w"], "o": [""]}]},
            {"d": {"k": "v"}},
        ),
        (
            "simple_python",
            {"l": {"type": "array", "items": {"type": "dict"}}},
            [],
            {"l": [[{"k": [1]}, {"k": [2, 3]}]]},
            {"l": [{"k": 1}, {"k": 2}]},
        ),
        ("simple_java", {"b": {"type": "boolean"}}, [], {"b": [True]}, {"b": "true"}),
        ("simple_java", {"n": {"type": "long"}}, [], {"n": [42]}, {"n": "42L"}),
        ("simple_java", {"x": {"type": "float"}}, [], {"x": [1.5]}, {"x": "1.5f"}),
        ("simple_java", {"s": {"type": "String"}}, [], {"s": ["hi there"]}, {"s": "hi there"}),
        (
            "simple_java",
            {"a": {"type": "Array", "items": {"type": "integer"}}},
            [],
            {"a": [[1, 2]]},
            {"a": "new int[]{1, 2}"},
        ),
        (
            "simple_java",
            {"a": {"type": "ArrayList", "items": {"type": "String"}}},
            [],
            {"a": [["p", "q"]]},
            {"a": 'new ArrayList<>(Arrays.asList("p", "q"))'},
        ),
        (
            "simple_java",
            {"m": {"type": "HashMap"}},
            [],
            {"m": [{"limit": [50], "name": ["x"]}]},
            {"m": 'new HashMap<String, Object>() {{ put("limit", 50); put("name", "x"); }}'},
        ),
        ("simple_javascript", {"b": {"type": "Boolean"}}, [], {"b": [False]}, {"b": "false"}),
        ("simple_javascript", {"x": {"type": "float"}}, [], {"x": [4]}, {"x": "4.0"}),
        (
            "simple_javascript",
            {"a": {"type": "array", "items": {"type": "String"}}},
            [],
            {"a": [["p"]]},
            {"a": '["p"]'},
        ),
        (
            "simple_javascript",
            {"d": {"type": "dict"}},
            [],
            {"d": [{"k": ["v"], "n": [[1]]}]},
            {"d": '{k: "v", n: [1]}'},
        ),
    ],
)
def test_bfcl_gold_derivation_rules(tmp_path, category, properties, required, allowed, expected):
    path = _write_bfcl(
        tmp_path,
        category,
        [_item(f"{category}_0", properties, required)],
        [{"id": f"{category}_0", "ground_truth": [{"f": allowed}]}],
    )
    (record,) = load_bfcl(path).records
    assert record["answer"] == [{"name": "f", "arguments": expected}]


@pytest.mark.parametrize(
    ("category", "answer"), [("irrelevance", []), ("live_irrelevance", []), ("live_relevance", None)]
)
def test_bfcl_no_ground_truth_categories(shared_data, category, answer):
    result = load_bfcl(shared_data / "bfcl" / f"BFCL_v4_{category}.json")
    assert result.problems == []
    assert result.records and all(r["answer"] == answer and "ground_truth" not in r for r in result.records)


def test_bfcl_bad_lines_become_problems(tmp_path):
    items = [_item("simple_python_0", {"a": {"type": "string"}}), "{not json", _item("simple_python_2", {})]
    path = _write_bfcl(
        tmp_path, "simple_python", items, [{"id": "simple_python_0", "ground_truth": [{"f": {"a": ["x"]}}]}]
    )
    result = load_bfcl(path)
    assert [r["id"] for r in result.records] == ["simple_python_0"]
    assert [(p.line, p.reason) for p in result.problems] == [
        (2, "broken JSON: Expecting property name enclosed in double quotes"),
        (3, "no ground truth for id 'simple_python_2' in possible_answer"),
    ]


def test_bfcl_answer_for_a_tool_not_offered_is_a_problem(tmp_path):
    path = _write_bfcl(
        tmp_path,
        "simple_python",
        [_item("simple_python_0", {})],
        [{"id": "simple_python_0", "ground_truth": [{"g": {}}]}],
    )
    result = load_bfcl(path)
    assert result.records == [] and NOT_OFFERED in result.problems[0].reason


@pytest.mark.parametrize(
    ("name", "truths", "message"),
    [
        ("BFCL_v4_multi_turn_base.json", None, "not supported"),
        ("BFCL_v4_simple_python.json", None, "ground truth"),
        ("BFCL_v4_missing.json", "absent", "does not exist"),
    ],
)
def test_bfcl_unusable_files_are_user_errors(tmp_path, name, truths, message):
    path = tmp_path / name
    if truths is None:
        path.write_text(
            json.dumps(_item(name.removeprefix("BFCL_v4_").removesuffix(".json") + "_0", {})) + "\n"
        )
    with pytest.raises(UserError, match=message):
        load_bfcl(path)


@pytest.mark.parametrize(
    ("relative", "layout", "category", "records", "problems"),
    [
        (OFFICIAL_L1, "apibank", "apibank_l1", 399, 0),
        (HAMMER_L1, "hammer", "apibank_l1", 399, 0),
        (TOOLRL_L1, "toolrl_apibank", "apibank_l1", 399, 0),
        (OFFICIAL_L2, "apibank", "apibank_l2", 121, 14),
        (HAMMER_L2, "hammer", "apibank_l2", 121, 6),
        (TOOLRL_L2, "toolrl_apibank", "apibank_l2", 61, 6),
        (TOOLRL_L3, "toolrl_apibank", "apibank_l3", 131, 0),
    ],
)
def test_apibank_counts(shared_data, relative, layout, category, records, problems):
    result = load_file(shared_data / relative, layout)
    assert (len(result.records), len(result.problems)) == (records, problems)
    assert all(record_errors(r) == [] for r in result.records)
    # level-2 items whose gold API was never retrieved in the dialogue are the only rejections
    assert all(NOT_OFFERED in p.reason for p in result.problems)
    assert {r["category"] for r in result.records} == {category}


def test_official_and_hammer_level1_agree(shared_data):
    official, hammer = (
        load_file(shared_data / OFFICIAL_L1).records,
        load_file(shared_data / HAMMER_L1).records,
    )
    assert official == hammer


def test_toolrl_level1_differs_only_where_its_gold_is_broken(shared_data):
    official = {r["id"]: r for r in load_file(shared_data / OFFICIAL_L1).records}
    toolrl = {r["id"]: r for r in load_file(shared_data / TOOLRL_L1).records}
    assert all(toolrl[i]["tools"] == official[i]["tools"] for i in official)
    differing = [i for i in official if toolrl[i]["answer"] != official[i]["answer"]]
    assert len(differing) == 5
    for i in differing:  # ToolRL's converter merged "adult_count='2', child_count='1'" into one value
        (want,), (got,) = official[i]["answer"], toolrl[i]["answer"]
        assert want["name"] == got["name"] == "BookHotel" and "child_count" not in got["arguments"]


def test_apibank_dialogue_turns_and_retrieved_tools(shared_data):
    records = load_file(shared_data / OFFICIAL_L2).records
    record = next(r for r in records if r["answer"][0]["name"] == "QueryHistoryToday")
    assert [t["name"] for t in record["tools"]] == ["ToolSearcher", "QueryHistoryToday"]
    assert [m["role"] for m in record["messages"]] == ["user", "assistant", "assistant", "tool"]
    call = {"name": "ToolSearcher", "arguments": {"keywords": "history October 6th"}}
    assert record["messages"][2] == {"role": "assistant", "content": "", "tool_calls": [call]}
    # only the prompt writes the calls as text: merged into the assistant turn before it
    assert build_messages(record)[2]["content"].endswith(
        '\n\n<tool_call>[{"name": "ToolSearcher", "arguments": {"keywords": "history October 6th"}}]</tool_call>'
    )
    assert record["answer"] == [{"name": "QueryHistoryToday", "arguments": {"date": "10-06"}}]
    assert all("Generate API Request" not in m["content"] for r in records for m in r["messages"])


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("[F(a='x', n=3)]", [{"name": "F", "arguments": {"a": "x", "n": 3}}]),
        ("[F(), G(l=[1, 2])]", [{"name": "F", "arguments": {}}, {"name": "G", "arguments": {"l": [1, 2]}}]),
        # unescaped quotes inside a quoted value, as 48 official level-1 answers have
        (
            "[R(user_id='1', data='[{'k': 'v'}]', t='2')]",
            [{"name": "R", "arguments": {"user_id": "1", "data": "[{'k': 'v'}]", "t": "2"}}],
        ),
    ],
)
def test_parse_api_request(text, calls):
    assert parse_api_request(text) == calls


@pytest.mark.parametrize(
    "text", ["[F('positional')]", "F(a=1)x", "[F(a=__import__('os').getcwd())]", "[F(a=open('x'))]"]
)
def test_parse_api_request_rejects_non_literals(text):
    with pytest.raises(ValueError):
        parse_api_request(text)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("bfcl/BFCL_v4_simple_python.json", "bfcl"),
        ("bfcl/BFCL_v4_irrelevance.json", "bfcl"),
        ("bfcl/possible_answer/BFCL_v4_simple_python.json", None),
        (OFFICIAL_L2, "apibank"),
        (HAMMER_L1, "hammer"),
        (str(Path(__file__).parent / "fixtures" / "xlam_sample.json"), "xlam"),  # Hammer's keys, query a string
        (TOOLRL_L3, "toolrl_apibank"),
        ("glaive/glaive_toolcall_en_demo.json", "glaive"),
        ("toolrl/dataset/rlla_4k/test.parquet", "toolrl"),
    ],
)
def test_every_layout_is_told_by_its_first_row(shared_data, relative, expected):
    path = shared_data / relative
    first = next(row for _, row, error in read_rows(path) if error is None)
    assert detect_format(first, str(path), FORMATS) == expected
