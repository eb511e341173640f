"""`load_records` on the shared data and on fixtures in ToolACE's and xLAM's published formats."""

import json
import sys
import types
from collections import Counter
from pathlib import Path

import pytest

from toolexpander.data.formats import detect_format, flat_params_schema, parse_python_calls, toolrl_tools
from toolexpander.data.schema import Problem, call_turn, record_errors
from toolexpander.errors import UserError
from toolexpander.tasks import FORMATS, load_records

FIXTURES = Path(__file__).parent / "fixtures"
TOOLACE = str(FIXTURES / "toolace_sample.json")
XLAM = str(FIXTURES / "xlam_sample.json")


def write_jsonl(path: Path, lines: list) -> str:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


def assert_clean(records: list[dict]) -> None:
    assert all(record_errors(r) == [] for r in records)
    assert len({r["id"] for r in records}) == len(records)


# ----- ToolRL ------------------------------------------------------------------------------------


def test_toolrl_sft_set(shared_data):
    path = str(shared_data / "toolrl/dataset/rlla_4k_raw/rlla_sft.json")
    result = load_records(path, "toolrl")
    # 400 rows: 398 records, and 2 rows whose data is wrong upstream: row 131 splits one call's
    # argument into calls of the non-tools 'LastName varchar' and 'HireDate date")', row 205
    # offers two tools named 'translate'.
    assert len(result.records) + len(result.problems) == 400
    assert len(result.records) == 398
    assert [(p.line, p.reason.split(",")[0]) for p in result.problems] == [
        (131, "answer[1] calls 'LastName varchar'"),
        (205, "duplicate tool name 'translate'"),
    ]
    assert_clean(result.records)
    # The README counts 59 outputs with a <response> and 346 with a <tool_call>: 5 have both,
    # so 54 are response-only and get the answer [] ("no call").
    assert sum(r["answer"] == [] for r in result.records) == 54
    first = result.records[0]
    assert first["id"] == "toolrl-0"
    assert first["messages"] == [
        {"role": "user", "content": "Could you help me find information on the manager Alex Ferguson?"}
    ]
    assert [t["name"] for t in first["tools"]][:2] == ["Search Managers", "Daily Match List-Scheduled"]
    assert first["tools"][0]["parameters"]["type"] == "object"
    assert first["answer"] == [{"name": "Search Managers", "arguments": {"name": "Alex Ferguson"}}]


def test_toolrl_history_becomes_turns(shared_data):
    result = load_records(str(shared_data / "toolrl/dataset/rlla_4k_raw/rlla_sft.json"), "toolrl")
    record = next(r for r in result.records if r["id"] == "toolrl-16")
    roles = [m["role"] for m in record["messages"]]
    assert roles[:5] == ["user", "assistant", "tool", "assistant", "user"]
    assert record["messages"][1] == call_turn([{"name": "Get Trending TV Shows", "arguments": {}}])
    assert all("<think>" not in m["content"] for m in record["messages"])


def test_toolrl_rl_split_parquet(shared_data):
    result = load_records(str(shared_data / "toolrl/dataset/rlla_4k/test.parquet"))
    # 80 rows; row 10 calls 'DAX Point Changes for Each Month ' where the tool is named
    # 'DAX Point Changes for Each Month (January-August, 2022)' (a truncated name upstream).
    assert (len(result.records), [p.line for p in result.problems]) == (79, [10])
    assert "is not among the offered tools" in result.problems[0].reason
    assert_clean(result.records)
    assert result.records[0]["answer"] == [{"name": "GetNews", "arguments": {"page": "1"}}]


TOOLRL_Q = {"q": {"type": "str", "description": "query"}}


@pytest.mark.parametrize(
    ("system", "name", "description"),
    [
        (f"1. Name: Find\nDescription: d\nParameters: {json.dumps(TOOLRL_Q)}", "Find", "d"),
        (f"1. Name: Find\nDescription: d\nParameters: {TOOLRL_Q!r}", "Find", "d"),  # API-Bank: Python literal
        (f"1. Find: d\nParameters: {TOOLRL_Q!r}", "Find", "d"),  # API-Bank level 3
    ],
)
def test_toolrl_tools_layouts(system, name, description):
    assert toolrl_tools(system) == [
        {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": TOOLRL_Q, "required": ["q"]},
        }
    ]


@pytest.mark.parametrize("parameters", ["{'q': }", "__import__('os').getcwd()"])
def test_toolrl_tools_reject_what_is_not_a_literal(parameters):
    with pytest.raises(ValueError, match="broken tool parameters JSON"):
        toolrl_tools(f"1. Name: Find\nDescription: d\nParameters: {parameters}")


# ----- glaive ------------------------------------------------------------------------------------


def test_glaive_one_item_per_call_turn(shared_data):
    result = load_records(str(shared_data / "glaive/glaive_toolcall_en_demo.json"), "glaive")
    # The README counts 211 calls in 153 of the 300 dialogues: every call becomes an item, each
    # of them valid (all gold tools are offered, all call JSON parses); call-free dialogues give none.
    assert (len(result.records), result.problems) == (211, [])
    assert_clean(result.records)
    assert len({r["id"].rsplit("-", 1)[0] for r in result.records}) == 153
    first = result.records[0]
    assert first["id"] == "glaive-0-3"
    assert [m["role"] for m in first["messages"]] == ["user", "assistant", "user"]
    assert first["answer"] == [
        {"name": "search_recipes", "arguments": {"ingredients": ["chicken", "bell peppers", "rice"]}}
    ]
    assert first["tools"][0]["parameters"]["required"] == ["ingredients"]


def test_glaive_earlier_calls_and_results_are_context(tmp_path):
    tools = json.dumps([{"name": "f", "parameters": {"type": "object"}}])
    dialogue = {
        "tools": tools,
        "conversations": [
            {"from": "human", "value": "do f twice"},
            {"from": "function_call", "value": '{"name": "f", "arguments": {"n": 1}}'},
            {"from": "observation", "value": "ok 1"},
            {"from": "function_call", "value": '{"name": "f", "arguments": {"n": 2'},
            {"from": "observation", "value": "ok 2"},
            {"from": "gpt", "value": "done, and now g"},
            {"from": "function_call", "value": '{"name": "g", "arguments": {}}'},
            {"from": "human", "value": "and f once more"},
            {"from": "function_call", "value": '{"name": "f", "arguments": {"n": 3}}'},
        ],
    }
    path = tmp_path / "glaive.json"
    path.write_text(json.dumps([dialogue]))
    result = load_records(str(path), "glaive")
    assert [r["id"] for r in result.records] == ["glaive-0-1", "glaive-0-8"]
    assert [str(p) for p in result.problems] == [
        f"{path}:1: broken call JSON: Expecting ',' delimiter (item glaive-0-3)",
        f"{path}:1: answer[0] calls 'g', which is not among the offered tools (item glaive-0-6)",
    ]
    last = result.records[1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool", "assistant"] + [
        "assistant",
        "user",
    ]
    assert last[1] == call_turn([{"name": "f", "arguments": {"n": 1}}])
    assert last[3]["content"] == '{"name": "f", "arguments": {"n": 2'  # a broken call stays as text


# ----- ToolACE -----------------------------------------------------------------------------------


def test_toolace_fixture():
    result = load_records(TOOLACE, "toolace")
    assert [r["id"] for r in result.records] == [
        "toolace-0-1",
        "toolace-1-3",
        "toolace-1-7",
        "toolace-2-1",
        "toolace-3-5",
    ]
    assert [str(p) for p in result.problems] == [
        f"{TOOLACE}:4: answer[0] calls 'getForecast', which is not among the offered tools (item toolace-3-1)",
        f"{TOOLACE}:5: broken call list: EOF in multi-line statement (item toolace-4-1)",
        f"{TOOLACE}:7: no JSON tool list in the system text",
    ]
    assert_clean(result.records)
    by_id = {r["id"]: r for r in result.records}
    assert by_id["toolace-0-1"]["answer"] == [
        {"name": "Market Trends API", "arguments": {"trend_type": "MOST_ACTIVE", "country": "us"}}
    ]
    assert [t["name"] for t in by_id["toolace-0-1"]["tools"]] == ["Market Trends API", "getWeather"]
    parallel = by_id["toolace-1-7"]
    assert [c["name"] for c in parallel["answer"]] == ["getWeather", "getForecast"]
    assert [m["role"] for m in parallel["messages"]] == ["user", "assistant", "user", "assistant", "tool"] + [
        "assistant",
        "user",
    ]
    assert parallel["messages"][1]["content"] == "Which city do you mean?"
    assert parallel["messages"][3] == call_turn(by_id["toolace-1-3"]["answer"])
    assert by_id["toolace-2-1"]["answer"][0]["name"] == "hotel.book-room"
    assert by_id["toolace-2-1"]["answer"][0]["arguments"]["guests"][1] == {"name": "Bob", "diet": None}


PYTHON_CALLS = [
    ("[f()]", [{"name": "f", "arguments": {}}]),
    ("  [f(a=1, b='x')]\n", [{"name": "f", "arguments": {"a": 1, "b": "x"}}]),
    ("f(a=-2.5)", [{"name": "f", "arguments": {"a": -2.5}}]),
    ("[]", []),
    ('[Get News API(q="a, b(c)")]', [{"name": "Get News API", "arguments": {"q": "a, b(c)"}}]),
    (
        "[a.b-c(x=[1, {'k': None}]), g(flag=True)]",
        [
            {"name": "a.b-c", "arguments": {"x": [1, {"k": None}]}},
            {"name": "g", "arguments": {"flag": True}},
        ],
    ),
    ("[f(\n  a=1,\n  b=2)]", [{"name": "f", "arguments": {"a": 1, "b": 2}}]),
]


@pytest.mark.parametrize(("text", "calls"), PYTHON_CALLS)
def test_parse_python_calls(text, calls):
    assert parse_python_calls(text) == calls


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[f(1)]", "'f' has positional arguments"),
        ("[f(**kw)]", "'f' has positional arguments"),
        ("[f(a=b)]", "argument 'a' is not a literal"),
        ("[f(a=__import__('os').system('true'))]", "argument 'a' is not a literal"),
        ("[f(a=1]", "EOF in multi-line statement"),
        ("[1, 2]", "an item is not a function call"),
        ("[(a=1)]", "a call has no function name"),
        ("[f(a=1) g(b=2)]", "invalid syntax"),
    ],
)
def test_parse_python_calls_rejects(text, reason):
    with pytest.raises(ValueError, match="broken call list") as error:
        parse_python_calls(text)
    assert reason in str(error.value)


# ----- xLAM --------------------------------------------------------------------------------------


def test_xlam_fixture():
    result = load_records(XLAM, "xlam")
    assert [r["id"] for r in result.records] == ["xlam-0", "xlam-1", "xlam-2", "xlam-3"]
    assert [str(p) for p in result.problems] == [
        f"{XLAM}:5: broken answers JSON: Expecting ',' delimiter",
        f"{XLAM}:6: answer[0] calls 'is_palindrome', which is not among the offered tools",
    ]
    assert_clean(result.records)
    parallel = result.records[0]
    assert parallel["messages"] == [
        {"role": "user", "content": "Where can I find live giveaways for beta access and games?"}
    ]
    assert [c["arguments"] for c in parallel["answer"]] == [{"type": "beta"}, {"type": "game"}]
    schemas = {t["name"]: t["parameters"] for r in result.records for t in r["tools"]}
    assert schemas["live_giveaways_by_type"]["properties"]["type"]["type"] == "str"
    required = {name: schema["required"] for name, schema in schemas.items()}
    assert required == {
        "live_giveaways_by_type": [],  # "default": "game"
        "fibonacci": ["n"],  # "default": "" means none
        "generate_password": [],  # "int, optional"
        "is_anagram": ["word1", "word2"],  # no default at all
    }


A, B_OPTIONAL, C_NULL_DEFAULT = (
    {"type": "str"},
    {"type": "List[int], optional"},
    {"type": "int", "default": None},
)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"type": "object", "properties": {}, "required": []}),
        (
            {"a": A, "b": B_OPTIONAL, "c": C_NULL_DEFAULT},
            {
                "type": "object",
                "properties": {"a": A, "b": B_OPTIONAL, "c": C_NULL_DEFAULT},
                "required": ["a"],
            },
        ),
        (
            {"type": "object", "properties": {"a": A}},
            {"type": "object", "properties": {"a": A}},
        ),  # already one
        ("not a dict", "not a dict"),  # left for record_errors
    ],
)
def test_flat_params_schema(params, expected):
    assert flat_params_schema(params) == expected


# ----- our own JSONL, broken lines, duplicates ---------------------------------------------------


def test_toolexpander_jsonl_round_trip(tmp_path):
    converted = load_records(XLAM, "xlam").records + load_records(TOOLACE, "toolace").records
    path = write_jsonl(tmp_path / "records.jsonl", converted)
    result = load_records(path)
    assert (result.records, result.problems) == (converted, [])


def test_broken_json_lines_are_problems_with_their_line(tmp_path):
    good = load_records(XLAM, "xlam").records
    path = write_jsonl(tmp_path / "x.jsonl", [good[0], '{"id": "x", ', good[1], "", "not json", good[2]])
    result = load_records(path)
    assert [r["id"] for r in result.records] == ["xlam-0", "xlam-1", "xlam-2"]
    assert result.problems == [
        Problem(path, 2, "broken JSON: Expecting property name enclosed in double quotes"),
        Problem(path, 5, "broken JSON: Expecting value"),
    ]


def test_broken_json_array_reports_the_line_of_the_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"id": "a"},\n  {"id": "b",}\n]\n')
    assert load_records(str(path), "toolexpander").problems == [
        Problem(str(path), 3, "broken JSON: Expecting property name enclosed in double quotes")
    ]


def test_json_array_problems_use_the_index(tmp_path):
    record = load_records(XLAM, "xlam").records[0]
    path = tmp_path / "records.json"
    path.write_text(json.dumps([record, {**record, "id": "other", "messages": []}]))
    assert load_records(str(path)).problems == [Problem(str(path), 2, "'messages' is empty")]


def test_duplicate_ids_are_problems(tmp_path):
    record = load_records(XLAM, "xlam").records[0]
    path = write_jsonl(tmp_path / "dup.jsonl", [record, record, {**record, "id": "other"}])
    result = load_records(path)
    assert [r["id"] for r in result.records] == ["xlam-0", "other"]
    assert result.problems == [Problem(path, 2, "duplicate id 'xlam-0', first at line 1")]


def test_every_invalid_record_is_reported_never_dropped(tmp_path):
    record = load_records(XLAM, "xlam").records[0]
    lines = [record, {**record, "id": 5}, {**record, "id": "b", "answer": {}}, [1], {**record, "id": "c"}]
    result = load_records(write_jsonl(tmp_path / "mixed.jsonl", lines))
    assert len(result.records) + len(result.problems) == len(lines)
    assert [p.line for p in result.problems] == [2, 3, 4]


# ----- detection, errors, the hub ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "format"),
    [
        ("toolrl/dataset/rlla_4k_raw/rlla_sft.json", "toolrl"),
        ("toolrl/dataset/rlla_4k/test.parquet", "toolrl"),
        ("glaive/glaive_toolcall_en_demo.json", "glaive"),
        (TOOLACE, "toolace"),
        (XLAM, "xlam"),
    ],
)
def test_auto_detection_matches_the_named_format(shared_data, source, format):
    path = str(shared_data / source)  # an absolute fixture path stays as it is
    auto, named = load_records(path), load_records(path, format)
    assert (auto.records, auto.problems) == (named.records, named.problems)
    assert auto.records


@pytest.mark.parametrize(
    ("row", "name", "expected"),
    [
        ({"id": "a", "messages": [], "tools": [], "answer": []}, "", "toolexpander"),
        ({"id": 0, "query": "q", "answers": "[]", "tools": "[]"}, "", "xlam"),
        ({"query": [{"role": "user"}], "answers": [], "tools": []}, "", "hammer"),
        ({"conversations": [], "tools": "[]"}, "", "glaive"),
        ({"conversations": [], "system": "..."}, "", "toolace"),
        ({"prompt": [], "reward_model": {}}, "", "toolrl"),
        (
            {"instruction": "1. Name: f\nDescription: d\nParameters: {}", "input": "", "output": ""},
            "",
            "toolrl",
        ),
        ({"instruction": "[BEGIN OF TASK]", "input": "", "output": ""}, "", None),
        ({"system": "", "user": "", "answer": {}}, "", "toolrl_apibank"),
        ({"conversations": []}, "data/ToolACE_data.json", "toolace"),
        (None, "Salesforce/xlam-function-calling-60k", "xlam"),
        ({"text": "?"}, "notes.jsonl", None),
    ],
)
def test_detect_format(row, name, expected):
    assert detect_format(row, name, FORMATS) == expected


def test_benchmarks_are_dispatched(shared_data):
    bfcl = load_records(str(shared_data / "bfcl/BFCL_v4_simple_python.json"))
    assert (len(bfcl.records), bfcl.problems) == (400, [])
    assert bfcl.records[0]["id"] == "simple_python_0"
    apibank = load_records(str(shared_data / "api_bank/test-data/level-1-api.json"), "apibank")
    assert len(apibank.records) == 399
    assert len(load_records(str(shared_data / "api_bank/test-data/level-1-api.json")).records) == 399
    # ToolRL's API-Bank files share the name "toolrl" with its training set; their keys tell them apart.
    toolrl = load_records(
        str(shared_data / "toolrl/benchmarks/API-Bank/level-1-api_processed.json"), "toolrl"
    )
    assert (len(toolrl.records), toolrl.problems) == (399, [])


@pytest.mark.parametrize("missing", ["missing.jsonl", "data/missing.json", "./missing", "a/b/c"])
def test_a_missing_path_is_a_user_error(tmp_path, monkeypatch, missing):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "datasets", None)  # the hub must not even be tried
    with pytest.raises(UserError, match=f"{missing} does not exist"):
        load_records(missing)


def test_a_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="is a folder"):
        load_records(str(tmp_path))


def test_unknown_and_undetectable_formats(tmp_path):
    with pytest.raises(UserError, match="unknown format 'sharegpt'; choose one of auto, toolexpander"):
        load_records(XLAM, "sharegpt")
    path = write_jsonl(tmp_path / "notes.jsonl", [{"text": "?"}])
    with pytest.raises(UserError, match="cannot tell the format") as error:
        load_records(path)
    assert all(f in str(error.value) for f in FORMATS)


def test_hub_rows_go_through_the_same_converters(monkeypatch):
    rows = json.loads(Path(XLAM).read_text())
    calls = []

    def load_dataset(name, split):
        calls.append((name, split))
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    result = load_records("Salesforce/xlam-function-calling-60k", split="train[:6]")
    assert calls == [("Salesforce/xlam-function-calling-60k", "train[:6]")]
    local = load_records(XLAM)
    assert result.records == local.records
    assert [(p.path, p.line) for p in result.problems] == [("Salesforce/xlam-function-calling-60k", 5)] + [
        ("Salesforce/xlam-function-calling-60k", 6)
    ]
    assert Counter(p.reason for p in result.problems) == Counter(p.reason for p in local.problems)
