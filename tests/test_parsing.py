"""Reading model answers: the assistant cut, the think block, the last tool-call block, the
self-made examples. Every rule of SPEC §2 that concerns parsing has a row here."""

import json
import re
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from toolexpander.prompts import render_answer
from toolexpander.rewards.parsing import (
    call_list,
    cut_at_assistant,
    decode_json,
    extract_examples,
    extract_think,
    extract_tool_calls,
    has_think_tags,
    last_tool_call_block,
    tag_blocks,
)

F = {"name": "f", "arguments": {"x": 1}}
G = {"name": "g", "arguments": {}}


def block(payload: str) -> str:
    return f"<tool_call>{payload}</tool_call>"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("no marker", "no marker"),
        ("<|im_start|>assistant\nhi", "\nhi"),
        ("<|im_start|>assistant A<|im_start|>user q<|im_start|>assistant B", " B"),
        ("<|im_start|>user only", "<|im_start|>user only"),
        ("", ""),
    ],
)
def test_cut_at_assistant(text, expected):
    assert cut_at_assistant(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>plan</think>rest", "plan"),
        ("<think></think>", ""),
        ("<think>a</think><think>b</think>", "a"),
        ("<think>open only", None),
        ("close only</think>", None),
        ("</think>reversed<think>", None),
        ("<think>old</think><|im_start|>assistant no think here", None),
        ("<think>ünïcødé 🙂</think>", "ünïcødé 🙂"),
    ],
)
def test_extract_think(text, expected):
    assert extract_think(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>x</think>", True),
        ("</think> order is not checked <think>", True),
        ("<think> only", False),
        ("</think> only", False),
    ],
)
def test_has_think_tags_is_presence_only(text, expected):
    assert has_think_tags(text) is expected


@pytest.mark.parametrize(
    "text, expected",
    [
        # the usual list, one or several calls, and no call
        (block(json.dumps([F])), [F]),
        (block(json.dumps([F, G])), [F, G]),
        (block("[]"), []),
        # one call object instead of a list is wrapped
        (block(json.dumps(F)), [F]),
        # JSON text inside a JSON string is decoded once more
        (block(json.dumps(json.dumps([F]))), [F]),
        (block(json.dumps(json.dumps(F))), [F]),
        # Tool-N1 iterates over a doubly decoded string: the empty one passes as no calls
        (block(json.dumps(json.dumps(""))), []),
        (block('""'), None),
        (block('"text"'), None),
        # the last block wins; an unclosed trailing block is no block
        (block(json.dumps([G])) + "then" + block(json.dumps([F])), [F]),
        (block(json.dumps([F])) + "<tool_call>" + json.dumps([G]), [F]),
        # lazy match: a block ends at the first closing tag, nested openings stay in the content
        ("<tool_call>[<tool_call>" + json.dumps([F]) + "</tool_call>", None),
        # whitespace around the JSON, including Unicode spaces, is stripped
        (block("\n  " + json.dumps([F], indent=2) + "\n"), [F]),
        (block("\u00a0\u2003" + json.dumps([F]) + "\u3000"), [F]),
        # items must be objects with both keys; extra keys are dropped
        (block(json.dumps([F, ["g", {}]])), None),
        (block("[1, 2]"), None),
        (block(json.dumps([{"name": "f"}])), None),
        (block(json.dumps([{"arguments": {}}])), None),
        (block(json.dumps([{"name": "f", "parameters": {}}])), None),
        (block(json.dumps([{"name": "f", "arguments": {}, "id": "c1"}])), [{"name": "f", "arguments": {}}]),
        # arguments may be any JSON value (Tool-N1 compares them as text)
        (block(json.dumps([{"name": "f", "arguments": "x=1"}])), [{"name": "f", "arguments": "x=1"}]),
        # not JSON, or JSON that is no call list
        (block("[{'name': 'f', 'arguments': {}}]"), None),
        (block(json.dumps([F])[:-1]), None),
        (block("[" + json.dumps(F) + ",]"), None),
        (block(""), None),
        (block("42"), None),
        (block("null"), None),
        (block("true"), None),
        ("no block at all", None),
        ("<tool_call>" + json.dumps([F]), None),
        # only the text after the last assistant marker counts
        (block(json.dumps([F])) + "<|im_start|>assistant\nno call", None),
        (block(json.dumps([G])) + "<|im_start|>assistant" + block(json.dumps([F])), [F]),
        # unicode survives, escaped or not
        (
            block('[{"name": "météo", "arguments": {"ville": "Z\\u00fcrich"}}]'),
            [{"name": "météo", "arguments": {"ville": "Zürich"}}],
        ),
    ],
)
def test_extract_tool_calls(text, expected):
    assert extract_tool_calls(text) == expected


def test_deeply_nested_or_huge_json_is_unparsable_not_an_error():
    assert extract_tool_calls(block("[" * 100_000)) is None
    assert extract_tool_calls(block("[" * 5000 + "]" * 5000)) is None
    assert extract_tool_calls(block("[" + "9" * 5000 + "]")) is None  # over Python's int digit limit


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<tool_call> [1] </tool_call>x<tool_call> last </tool_call>", "last"),
        ("<tool_call></tool_call>", ""),
        ("none", None),
    ],
)
def test_last_tool_call_block(text, expected):
    assert last_tool_call_block(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [('"[1]"', [1]), ("[1]", [1]), ('"x"', None), ("{", None), ("null", None), ('"\\"\\""', "")],
)
def test_decode_json_decodes_double_encoded_text_once_more(text, expected):
    assert decode_json(text) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (F, [F]),
        ([F], [F]),
        ("", []),
        ({"name": "f"}, None),
        ("x", None),
        (None, None),
        (3, None),
        ([F, 1], None),
    ],
)
def test_call_list(value, expected):
    assert call_list(value) == expected


EXAMPLE = '<example>Query: Weather in Oslo?\nCall: [{"name": "w", "arguments": {"city": "Oslo"}}]</example>'
EXAMPLE_CALLS = [{"name": "w", "arguments": {"city": "Oslo"}}]


@pytest.mark.parametrize(
    "text, expected",
    [
        (f"<think>{EXAMPLE}</think>", [{"query": "Weather in Oslo?", "calls": EXAMPLE_CALLS}]),
        (
            f"<think>first {EXAMPLE} then {EXAMPLE}</think>",
            [{"query": "Weather in Oslo?", "calls": EXAMPLE_CALLS}] * 2,
        ),
        # a single call object, lower-case labels, extra spacing
        (
            '<think><example>\n query:  Rain?\n\n call: {"name": "w", "arguments": {}}\n</example></think>',
            [{"query": "Rain?", "calls": [{"name": "w", "arguments": {}}]}],
        ),
        # outside the think block, or no think block
        (f"<think>plan</think>{EXAMPLE}", []),
        (EXAMPLE, []),
        # malformed examples are skipped
        ('<think><example>Query:   \nCall: [{"name": "w", "arguments": {}}]</example></think>', []),
        ('<think><example>Call: [{"name": "w", "arguments": {}}]</example></think>', []),
        ("<think><example>Query: q\nCall: w(city='Oslo')</example></think>", []),
        ("<think><example>Query: q\nCall: []</example></think>", []),
        ('<think><example>Query: q\nCall: [{"name": "w"}]</example></think>', []),
        ('<think><example>Query: q Call: [{"name": "w", "arguments": {}}]</example></think>', []),
        ('<think><example>Query: q\nCall: [{"name": "w", "arguments": {}}]</think>', []),
        (
            f"<think><example>Query: q\nCall: nope</example>{EXAMPLE}</think>",
            [{"query": "Weather in Oslo?", "calls": EXAMPLE_CALLS}],
        ),
    ],
)
def test_extract_examples(text, expected):
    assert extract_examples(text) == expected


FRAGMENTS = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<example>",
        "</example>",
        "<|im_start|>assistant",
        "Query:",
        "\nCall:",
        "[",
        "]",
        "{",
        "}",
        '{"name":',
        '"arguments":',
        '"f"',
        ",",
        ":",
        '"',
        "\\",
        " ",
        "\n",
        "null",
        "1",
        '""',
        "é",
        "\u00a0",
    ]
)
TEXTS = st.one_of(st.text(), st.lists(st.one_of(FRAGMENTS, st.text(max_size=3)), max_size=30).map("".join))


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_parsers_never_raise_and_return_their_types(text):
    assert isinstance(cut_at_assistant(text), str)
    assert extract_think(text) is None or isinstance(extract_think(text), str)
    calls = extract_tool_calls(text)
    assert calls is None or all(list(call) == ["name", "arguments"] for call in calls)
    for example in extract_examples(text):
        assert example["query"].strip() and example["calls"]
    assert isinstance(has_think_tags(text), bool)


@settings(max_examples=300)
@given(TEXTS)
def test_tag_blocks_finds_what_the_lazy_pattern_finds(text):
    """`tag_blocks` replaces Tool-N1's ``re.findall(r"<tool_call>(.*?)</tool_call>", DOTALL)``."""
    assert tag_blocks(text, "<tool_call>", "</tool_call>") == re.findall(
        r"<tool_call>(.*?)</tool_call>", text, re.DOTALL
    )


@given(TEXTS)
def test_cut_is_idempotent(text):
    assert cut_at_assistant(cut_at_assistant(text)) == cut_at_assistant(text)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
CALLS = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1), "arguments": st.dictionaries(st.text(), JSON_VALUES, max_size=4)}
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(CALLS, st.text())
def test_a_rendered_answer_parses_back(calls, think):
    """What `prompts.render_answer` writes, `extract_tool_calls` reads back (unless the think
    text or a JSON string holds a tag that moves the block boundaries)."""
    text = render_answer(calls, think=think)
    assume(text.count("tool_call>") == 2 and "<|im_start|>assistant" not in text)
    assert extract_tool_calls(text) == calls


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>" * 100_000,
        "<think>" + "<example>" * 100_000,
        "<think><example>Query: q" + "\n" * 100_000 + "x</example></think>",
        "<think><example>Query: q" + " \n\t" * 100_000 + "Call: []</example></think>",
        "<think>" + "</think> " * 100_000 + "<tool_call>[]</tool_call>",
    ],
    ids=["open tool_call tags", "open example tags", "newlines", "whitespace", "closing think tags"],
)
def test_degenerate_outputs_parse_in_linear_time(text):
    """A small model may repeat one token for its whole budget: parsing must stay fast (a lazy
    pattern with backtracking took minutes on the newline case)."""
    start = time.process_time()
    for parse in (extract_tool_calls, extract_examples, extract_think):
        parse(text)
    assert time.process_time() - start < 2.0
