"""One hostile or malformed record costs that record only: it becomes a problem whose reason says
in words what is wrong, and the good records around it still load (issue 22)."""

import copy
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolexpander.cli import main
from toolexpander.data.formats import MAX_LITERAL_CHARS, convert_rows, shape_errors
from toolexpander.data.schema import MAX_DEPTH, TOO_DEEP, Problem, too_deep
from toolexpander.errors import UserError
from toolexpander.tasks import FORMATS, load_records

DEEP_TEXT = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError on it
DASHES = "-" * 100_000  # ast's parser overflows on it (MemoryError)
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


def nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


# One good row per format, and the file name its format needs (a level, a BFCL category).
GOOD = {
    "toolexpander": (
        "records.jsonl",
        {
            "id": "a",
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [{"name": "get_weather", "parameters": {"type": "object"}}],
            "answer": [CALL],
        },
    ),
    "xlam": (
        "xlam.jsonl",
        {
            "query": "Weather in Paris?",
            "answers": json.dumps([CALL]),
            "tools": json.dumps([{"name": "get_weather", "parameters": {"city": {"type": "str"}}}]),
        },
    ),
    "glaive": (
        "glaive.jsonl",
        {
            "conversations": [
                {"from": "human", "value": "Weather in Paris?"},
                {"from": "function_call", "value": json.dumps(CALL)},
            ],
            "tools": json.dumps([{"name": "get_weather", "parameters": {}}]),
        },
    ),
    "toolace": (
        "toolace.jsonl",
        {
            "system": 'Tools: [{"name": "get_weather", "parameters": {}}]',
            "conversations": [
                {"from": "user", "value": "Weather in Paris?"},
                {"from": "assistant", "value": '[get_weather(city="Paris")]'},
            ],
        },
    ),
    "toolrl": (
        "toolrl.jsonl",
        {
            "instruction": '1. Name: get_weather\nDescription: d\nParameters: {"city": {"type": "str"}}',
            "input": "<user>Weather in Paris?</user>",
            "output": '<tool_call>\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n</tool_call>',
        },
    ),
    "apibank": (
        "level-1-api.jsonl",
        {
            "instruction": 'API descriptions:\n{"name": "get_weather", "input_parameters": {}}',
            "input": "User: Weather in Paris?\nGenerate API Request:",
            "expected_output": "API-Request: [get_weather(city='Paris')]",
        },
    ),
    "hammer": (
        "apibank_l1.jsonl",
        {
            "tools": [{"name": "get_weather", "parameters": {}}],
            "query": [{"role": "user", "content": "Weather in Paris?"}],
            "answers": [CALL],
        },
    ),
    "toolrl_apibank": (
        "level-1-api_processed.jsonl",
        {
            "system": "1. Name: get_weather\nDescription: d\nParameters: {'city': {'type': 'str'}}",
            "user": "<user>Weather in Paris?</user>",
            "answer": {"name": "get_weather", "parameters": {"city": "Paris"}},
        },
    ),
    "bfcl": (
        "BFCL_v4_simple_python.json",
        {
            "question": [[{"role": "user", "content": "Weather in Paris?"}]],
            "function": [{"name": "get_weather", "parameters": {"type": "dict", "properties": {}}}],
        },
    ),
}


def changed(format: str, path: str, value) -> dict:
    """The good row of ``format`` with the field at ``path`` (keys and indexes joined by ".") set
    to ``value``, or removed when ``value`` is ``...``."""
    row = copy.deepcopy(GOOD[format][1])
    *parents, last = [int(key) if key.isdigit() else key for key in path.split(".")]
    node = row
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return row


def write_source(folder: Path, format: str, hostile) -> str:
    """A file of ``format``: a good row, ``hostile`` (a row, or a raw line when a string), a good
    row; BFCL's ground truth beside it."""
    name, good = GOOD[format]
    rows = [good, hostile, good]
    if format == "bfcl":
        rows = [
            {**row, "id": f"simple_python_{i}"} if isinstance(row, dict) else row
            for i, row in enumerate(rows)
        ]
        answers = folder / "possible_answer"
        answers.mkdir()
        truths = [
            {"id": f"simple_python_{i}", "ground_truth": [{"get_weather": {"city": ["Paris"]}}]}
            for i in range(3)
        ]
        (answers / name).write_text("".join(json.dumps(t) + "\n" for t in truths))
    if format == "toolexpander":
        rows = [{**row, "id": str(i)} if isinstance(row, dict) else row for i, row in enumerate(rows)]
    path = folder / name
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


HOSTILE = [
    # Nesting: in the line itself, in a field, in JSON text inside a field.
    ("toolexpander", DEEP_TEXT, TOO_DEEP),
    ("toolexpander", changed("toolexpander", "answer.0.arguments", {"x": nested(MAX_DEPTH)}), TOO_DEEP),
    ("xlam", changed("xlam", "answers", DEEP_TEXT), TOO_DEEP),
    ("xlam", changed("xlam", "answers", json.dumps([{**CALL, "arguments": nested(MAX_DEPTH)}])), TOO_DEEP),
    ("glaive", changed("glaive", "conversations.1.value", DEEP_TEXT), f"{TOO_DEEP} (item glaive-1-1)"),
    (
        "toolace",
        changed("toolace", "system", "Tools: " + DEEP_TEXT),
        f"the system text holds JSON {TOO_DEEP}",
    ),
    ("toolrl", changed("toolrl", "output", f"<tool_call>{DEEP_TEXT}</tool_call>"), TOO_DEEP),
    (
        "hammer",
        changed(
            "hammer",
            "query",
            [GOOD["hammer"][1]["query"][0], {"role": "assistant", "content": f"```json\n{DEEP_TEXT}\n```"}],
        ),
        TOO_DEEP,
    ),
    ("bfcl", changed("bfcl", "function.0.parameters", nested(200)), TOO_DEEP),
    # Text too long for `ast`, or nested too deeply for its parser.
    (
        "toolace",
        changed("toolace", "conversations.1.value", f"[get_weather(city={DASHES})]"),
        f"call list longer than {MAX_LITERAL_CHARS:,} characters (item toolace-1-1)",
    ),
    (
        "toolace",
        changed("toolace", "conversations.1.value", f"[get_weather(city={'-' * 5000}1)]"),
        "broken call list: nested too deeply to parse (item toolace-1-1)",
    ),
    (
        "apibank",
        changed("apibank", "expected_output", f"API-Request: [get_weather(city={DASHES}-)]"),
        f"argument 'city' longer than {MAX_LITERAL_CHARS:,} characters",
    ),
    (
        "apibank",
        changed("apibank", "expected_output", f"API-Request: [get_weather(city={DASHES})]"),
        "argument 'city' is not a literal",  # within the limit, yet too deep for ast's parser
    ),
    # Not a record, a number Python will not read.
    ("toolexpander", '"x"', "a record must be a JSON object, got str"),
    ("xlam", "[1, 2]", "a record must be a JSON object, got list"),
    ("toolexpander", "1" * 5000, "broken JSON: a number longer than 4300 digits"),
    # Fields of the wrong type, or missing, where Python's own messages were the reasons.
    ("xlam", changed("xlam", "tools", 3), "'tools' must be a string or a list, got int"),
    ("xlam", changed("xlam", "answers", json.dumps(CALL)), "answers must be a list, got dict"),
    ("xlam", changed("xlam", "answers", "[1]"), "a call must be a JSON object, got int"),
    ("xlam", changed("xlam", "query", ["hi"]), "'query' must be a string, got list"),
    (
        "glaive",
        changed("glaive", "conversations", "hi"),
        "'conversations' must be a list of objects, got str",
    ),
    ("glaive", changed("glaive", "conversations.1", "hi"), "conversations[1] must be an object, got str"),
    ("glaive", changed("glaive", "conversations.1.from", ...), "missing field 'conversations[1].from'"),
    ("glaive", changed("glaive", "tools", "{}"), "tools must be a list, got dict"),
    ("toolace", changed("toolace", "system", ["x"]), "'system' must be a string, got list"),
    (
        "toolace",
        changed("toolace", "conversations.0.value", 5),
        "conversations[0].value must be a string, got int",
    ),
    ("toolrl", changed("toolrl", "output", 5), "'output' must be a string, got int"),
    (
        "toolrl",
        {
            "prompt": [{"content": "1. Name: f\nDescription: d\nParameters: {}"}],
            "reward_model": {"ground_truth": ""},
        },
        "'prompt' must hold a system and a user turn",
    ),
    (
        "toolrl",
        {"prompt": "x", "reward_model": {}},
        "'prompt' must be a list of objects, got str; missing field 'reward_model.ground_truth'",
    ),
    ("apibank", changed("apibank", "instruction", "no tools"), "'instruction' has no 'API descriptions:'"),
    (
        "apibank",
        changed("apibank", "instruction", "API descriptions:\n[1]"),
        "an API description must be an object with a string 'name'",
    ),
    (
        "apibank",
        changed("apibank", "instruction", "API descriptions:\n{"),
        "broken API description JSON: Expecting property name enclosed in double quotes",
    ),
    ("hammer", changed("hammer", "answers", [1, 2]), "a call must be a JSON object, got int"),
    ("hammer", changed("hammer", "query.0.role", 3), "query[0].role must be a string, got int"),
    ("hammer", changed("hammer", "tools.0", "get_weather"), "tools[0] must be an object, got str"),
    (
        "toolrl_apibank",
        changed("toolrl_apibank", "answer", "x"),
        "'answer' must be an object or a list, got str",
    ),
    ("bfcl", changed("bfcl", "function", "x"), "'function' must be a list of objects, got str"),
    ("bfcl", changed("bfcl", "question", [["hi"]]), "question[0][0] must be an object, got str"),
    (
        "bfcl",
        changed("bfcl", "function.0.parameters", "x"),
        "no gold answer for id 'simple_python_1': its ground truth or its functions' parameters are not in BFCL's layout",
    ),
    # A reason quotes a value short, however long it is.
    (
        "toolexpander",
        changed("toolexpander", "messages.0.role", DASHES),
        f"messages[0].role must be one of system/user/assistant/tool, got {'-' * 40!r}…; 'messages' has no user turn",
    ),
]


@pytest.mark.parametrize(
    ("format", "hostile", "reason"), HOSTILE, ids=[f"{c[0]}-{i}" for i, c in enumerate(HOSTILE)]
)
def test_a_hostile_row_is_a_worded_problem_and_its_neighbours_load(tmp_path, format, hostile, reason):
    path = write_source(tmp_path, format, hostile)
    result = load_records(path, format)
    assert result.problems == [Problem(path, 2, reason)]
    assert len(result.records) == 2


@pytest.mark.parametrize("format", GOOD)
def test_the_good_rows_load(tmp_path, format):
    result = load_records(write_source(tmp_path, format, GOOD[format][1]), format)
    assert (len(result.records), result.problems) == (3, [])


def test_a_deep_json_array_file_is_one_clear_problem(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text(f"[{DEEP_TEXT}]")
    assert load_records(str(path), "toolexpander").problems == [Problem(str(path), 1, TOO_DEEP)]
    assert main(["data", "validate", str(path)]) == 2
    assert capsys.readouterr().out == f"{path}:1: {TOO_DEEP}\n"


def test_validate_and_train_skip_hostile_lines(tmp_path, capsys):
    from toolexpander.trainer.commands import load_train_tasks
    from toolexpander.trainer.config import ToolExpanderScriptArguments

    path = write_source(
        tmp_path, "toolace", changed("toolace", "conversations.1.value", f"[get_weather(city={DASHES})]")
    )
    with open(path, "a") as file:
        file.write(DEEP_TEXT + "\n")
    assert main(["data", "validate", path, "--skip-invalid"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "2 valid, 2 skipped"
    options = {"dataset": path, "dataset_split": None}
    tasks, _ = load_train_tasks(ToolExpanderScriptArguments(**options, skip_invalid=True))
    assert [task["id"] for task in tasks] == ["toolace-0-1", "toolace-2-1"]
    with pytest.raises(UserError, match="2 invalid training records"):
        load_train_tasks(ToolExpanderScriptArguments(**options, skip_invalid=False))


# Python's own messages, which a reason must never be.
RAW = re.compile(
    r"object is not|indices must be|has no attribute|index out of range|unhashable|unpack|"
    r"expected str|argument of type|converter failed|maximum recursion"
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    format=st.sampled_from(sorted(set(GOOD) - {"bfcl"})),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=5),
        st.sampled_from(["[1]", '{"a": 1}', "[get_weather(x=1)]", DEEP_TEXT[:3000] + DEEP_TEXT[-3000:]]),
        st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=3)), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.builds(nested, st.integers(1, 2 * MAX_DEPTH)),
    ),
    data=st.data(),
)
def test_any_field_set_to_anything_gives_a_worded_reason_or_a_record(format, value, data):
    row = GOOD[format][1]
    paths, stack = [], [("", row)]
    while stack:  # every key and index of the good row
        path, node = stack.pop()
        children = (
            node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        )
        for key, child in children:
            stack.append((f"{path}.{key}".lstrip("."), child))
            paths.append(f"{path}.{key}".lstrip("."))
    path = data.draw(st.sampled_from(paths))
    hostile = changed(format, path, data.draw(st.sampled_from([value, ...])))
    context = {"level": 1} if FORMATS[format].context else None
    result = convert_rows([(1, hostile, None)], "x", FORMATS[format], context)
    for problem in result.problems:
        assert not RAW.search(problem.reason), problem.reason
        assert len(problem.reason) < 300


@pytest.mark.parametrize(
    ("value", "shape", "errors"),
    [
        ({"a": "x"}, {"a": str}, []),
        ({}, {"a?": str}, []),
        ({}, {"a": str}, ["missing field 'a'"]),
        ({"a": 1}, {"a": (str, list)}, ["'a' must be a string or a list, got int"]),
        ({"a": [1, "x", 2]}, {"a": [str]}, ["a[0] must be a string, got int"]),
        ({"a": [[{}]]}, {"a": [[{"b": object}]]}, ["missing field 'a[0][0].b'"]),
        ({"a": "x"}, {"a": [{"b": str}]}, ["'a' must be a list of objects, got str"]),
        ({"a": {"b": 1}}, {"a": {"b": str, "c?": list}}, ["a.b must be a string, got int"]),
    ],
)
def test_shape_errors(value, shape, errors):
    assert shape_errors(value, shape) == errors


@pytest.mark.parametrize(
    ("value", "deep"),
    [
        (1, False),
        ([], False),
        (nested(MAX_DEPTH), False),
        (nested(MAX_DEPTH + 1), True),
        ({"a": [nested(MAX_DEPTH - 1)]}, True),
    ],
)
def test_too_deep(value, deep):
    assert too_deep(value) is deep


# ----- files that are not data ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("binary.jsonl", bytes(range(256)) * 4, "is not UTF-8 text"),
        ("utf16.jsonl", (json.dumps(GOOD["toolexpander"][1]) + "\n").encode("utf-16"), "is not UTF-8 text"),
        ("utf16.json", "[1]".encode("utf-16-le"), "is not UTF-8 text"),
        ("corrupt.parquet", b"PAR1 not really parquet PAR1", "is not a readable parquet file"),
        ("empty.parquet", b"", "is not a readable parquet file"),
    ],
)
def test_an_unreadable_file_is_a_one_line_error(tmp_path, capsys, name, content, message):
    from toolexpander.trainer.commands import load_train_tasks
    from toolexpander.trainer.config import ToolExpanderScriptArguments

    path = tmp_path / name
    path.write_bytes(content)
    assert main(["data", "validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {path} {message}")
    assert captured.err.count("\n") == 1
    with pytest.raises(UserError, match=message):
        load_train_tasks(ToolExpanderScriptArguments(dataset=str(path), dataset_split=None, skip_invalid=True))


def test_a_truncated_parquet_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD["toolexpander"][1]] * 50), path)
    path.write_bytes(path.read_bytes()[:-40])
    assert main(["data", "validate", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {path} is not a readable parquet file")
