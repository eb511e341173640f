"""`record_errors`: every check as a table row, and a property: it never raises."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolexpander.data.schema import ROLES, call_turn, make_record, record_errors
from toolexpander.prompts import build_messages, render_calls

VALID = {
    "id": "a",
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
    "tools": [{"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}],
    "answer": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
}


def changed(**fields):
    """VALID with some fields replaced; a field given as ``...`` is removed."""
    record = copy.deepcopy(VALID)
    for key, value in fields.items():
        if value is ...:
            del record[key]
        else:
            record[key] = value
    return record


USER = {"role": "user", "content": "hi"}
TOOL_F = {"name": "f", "parameters": {}}

CASES = [
    ("valid", VALID, []),
    ("no call fits", changed(answer=[]), []),
    ("answer scored otherwise", changed(answer=None), []),
    ("no tools, no call", changed(tools=[], answer=[]), []),
    ("extra keys kept", changed(category="live_simple"), []),
    ("tool without parameters", changed(tools=[{"name": "get_weather"}]), []),
    (
        "every role",
        changed(messages=[{"role": r, "content": "x"} for r in ROLES]),
        [],
    ),
    ("not an object", [VALID], ["a record must be a JSON object, got list"]),
    ("missing field", changed(tools=...), ["missing field 'tools'"]),
    ("missing fields", changed(id=..., answer=...), ["missing field 'id', 'answer'"]),
    ("id not a string", changed(id=3), ["'id' must be a non-empty string"]),
    ("empty id", changed(id=""), ["'id' must be a non-empty string"]),
    ("messages not a list", changed(messages="hi"), ["'messages' must be a list, got str"]),
    ("empty messages", changed(messages=[]), ["'messages' is empty"]),
    ("message not an object", changed(messages=[USER, "hi"]), ["messages[1] must be an object"]),
    (
        "unknown role",
        changed(messages=[USER, {"role": "bot", "content": "x"}]),
        ["messages[1].role must be one of system/user/assistant/tool, got 'bot'"],
    ),
    (
        "content not a string",
        changed(messages=[{"role": "user", "content": ["hi"]}]),
        ["messages[0].content must be a string"],
    ),
    (
        "no user turn",
        changed(messages=[{"role": "system", "content": "x"}]),
        ["'messages' has no user turn"],
    ),
    ("tools not a list", changed(tools={"name": "f"}, answer=[]), ["'tools' must be a list, got dict"]),
    ("tool not an object", changed(tools=["f"], answer=[]), ["tools[0] must be an object"]),
    ("tool without a name", changed(tools=[{"parameters": {}}], answer=[]), ["tools[0] has no name"]),
    ("tool with an empty name", changed(tools=[{"name": ""}], answer=[]), ["tools[0] has no name"]),
    ("duplicate tool names", changed(tools=[TOOL_F, TOOL_F], answer=[]), ["duplicate tool name 'f'"]),
    (
        "description not a string",
        changed(tools=[{"name": "f", "description": 1}], answer=[]),
        ["tools[0].description must be a string"],
    ),
    (
        "parameters not an object",
        changed(tools=[{"name": "f", "parameters": "x"}], answer=[]),
        ["tools[0].parameters must be an object"],
    ),
    ("answer not a list", changed(answer={}), ["'answer' must be a list, got dict"]),
    ("call not an object", changed(answer=["get_weather"]), ["answer[0] must be an object"]),
    ("call without a name", changed(answer=[{"arguments": {}}]), ["answer[0] has no name"]),
    (
        "arguments not an object",
        changed(answer=[{"name": "get_weather", "arguments": "city=Paris"}]),
        ["answer[0].arguments must be an object"],
    ),
    (
        "arguments missing",
        changed(answer=[{"name": "get_weather"}]),
        ["answer[0].arguments must be an object"],
    ),
    (
        "tool not offered",
        changed(answer=[{"name": "get_time", "arguments": {}}]),
        ["answer[0] calls 'get_time', which is not among the offered tools"],
    ),
    (
        "offered tools unknown when the tool list is broken",
        changed(tools=[TOOL_F, TOOL_F], answer=[{"name": "g", "arguments": {}}]),
        ["duplicate tool name 'f'"],
    ),
    (
        "several errors at once",
        changed(messages=[], answer={}),
        ["'messages' is empty", "'answer' must be a list, got dict"],
    ),
]


@pytest.mark.parametrize(("record", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_record_errors(record, expected):
    assert record_errors(record) == expected


def test_make_record_orders_fields_and_stringifies_the_id():
    record = make_record(7, VALID["messages"], VALID["tools"], [], task="generic", category="x")
    assert list(record) == ["id", "messages", "tools", "answer", "task", "category"]
    assert record["id"] == "7"
    assert record_errors(record) == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)
NAMES = st.sampled_from(["f", "g", ""]) | JSON
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from([*ROLES, "bot"]) | JSON, "content": st.text() | JSON}
)
TOOL = st.fixed_dictionaries({"name": NAMES}, optional={"description": JSON, "parameters": JSON}) | JSON
CALL = st.fixed_dictionaries({"name": NAMES}, optional={"arguments": JSON}) | JSON
RECORD = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=3) | JSON,
        "messages": st.lists(MESSAGE, max_size=3) | JSON,
        "tools": st.lists(TOOL, max_size=3) | JSON,
        "answer": st.lists(CALL, max_size=3) | JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(RECORD | JSON)
def test_record_errors_never_raises(record):
    errors = record_errors(record)
    assert isinstance(errors, list) and all(isinstance(e, str) and e for e in errors)
    if not errors:  # what "valid" promises to the loaders and the trainer
        names = [tool["name"] for tool in record["tools"]]
        assert len(set(names)) == len(names)
        assert any(m["role"] == "user" for m in record["messages"])
        assert all(call["name"] in names for call in record["answer"] or [])


def test_earlier_calls_are_data_and_only_the_prompt_renders_them():
    calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    record = {**VALID, "messages": [*VALID["messages"], call_turn(calls), {"role": "tool", "content": "sunny"}]}
    assert record_errors(record) == []
    posed = build_messages({**record, "messages": [*record["messages"], {"role": "user", "content": "And Rome?"}]})
    assert posed[2] == {"role": "assistant", "content": render_calls(calls)}
    with_text = {"role": "assistant", "content": "Let me look.", "tool_calls": calls}
    assert build_messages({**record, "messages": [VALID["messages"][0], with_text]})[2]["content"] == (
        "Let me look.\n" + render_calls(calls)
    )


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"role": "user", "content": "", "tool_calls": []}, "messages[1] has tool_calls but is not an assistant turn"),
        ({"role": "assistant", "content": "", "tool_calls": {}}, "'messages[1].tool_calls' must be a list, got dict"),
        ({"role": "assistant", "content": "", "tool_calls": [{"name": "f"}]}, "messages[1].tool_calls[0].arguments"),
    ],
)
def test_malformed_tool_calls_are_named(message, error):
    errors = record_errors({**VALID, "messages": [*VALID["messages"], message]})
    assert any(e.startswith(error) for e in errors), errors


def test_a_task_name_must_be_a_string():
    assert record_errors({**VALID, "task": 3}) == ["'task' must be a non-empty string"]
