"""The native readers read replies as vLLM's ``hermes`` and ``llama3_json`` tool parsers do
(their non-streaming ``extract_tool_calls``), and never raise.

vLLM is not installed here: each golden case states what vLLM's parser returns for the reply, as
read from its source. Where vLLM returns calls, ours returns the same calls; where vLLM returns
none and hands the reply back as text, ours returns [] for prose and None for a broken call.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolexpander.rewards.call_formats import CALL_FORMATS, parse_calls

F = {"name": "f", "arguments": {"a": "5"}}
G = {"name": "g", "arguments": {"n": 2}}
SEND = {"name": "send", "arguments": {"body": "wrap each call in <tool_call> tags"}}


def block(call: dict, close: bool = True) -> str:
    return f"<tool_call>\n{json.dumps(call)}\n" + ("</tool_call>" if close else "")


def llama(call: dict, key: str = "parameters") -> str:
    return json.dumps({"name": call["name"], key: call["arguments"]})


HERMES = [  # (reply, what ours returns; vLLM returns the same calls, or no call for [] and None)
    (block(SEND), [SEND]),  # a marker inside a quoted argument is part of the block
    (block({"name": "f", "arguments": {"s": "a </tool_call> b"}}), None),  # the block ends there
    ("I will check.\n" + block(F) + "\nDone.", [F]),  # prose around the blocks is content
    (block(F) + "\n" + block(G, close=False), [F, G]),  # the last closing tag cut off by the stop
    ("<think>maybe <tool_call> here</think>\n" + block(F), [F]),  # the think text is not read
    (block({"name": "f", "parameters": {}}), None),  # hermes needs "arguments"
    (block({"name": 5, "arguments": {}}), None),  # a name must be a string
    (block({"name": "f", "arguments": "x"}), [{"name": "f", "arguments": "x"}]),  # kept as given
    ("<tool_call></tool_call>", None),
    ("No tool fits; I would use {curly} braces.", []),
]

LLAMA = [
    ('Let me look that up.<|python_tag|>{"name": "f", "parameters": {"a": "5"}}', [F]),  # prose first
    ("<|python_tag|>" + llama(F) + "; " + llama(G), [F, G]),
    ("Calling it: " + llama(F) + " now.", [F]),  # bare JSON after prose
    ('{"name": "f", "arguments": {"a": "5"}, "parameters": {"a": 1}}', [F]),  # arguments win
    (llama(F) + "\n" + llama(G, key="arguments"), [F, G]),  # no ";" needed
    (llama(F) + llama(G), None),  # vLLM skips a brace right after an object, then fails inside it
    ('{"name": "f", "parameters": {"s": "a { b"}}', [{"name": "f", "arguments": {"s": "a { b"}}]),
    (llama(F) + "<|eot_id|>", [F]),
    ("Use {curly} braces.", []),  # prose with a brace: no call
    ('{"result": 5}', None),  # an object that is not a call
    ('<|python_tag|>{"name": "f", "parameters": {', None),
    ('I would call {"name": "f"', None),
    ("No function fits this request.", []),
]


@pytest.mark.parametrize(("reply", "expected"), HERMES, ids=[str(i) for i in range(len(HERMES))])
def test_hermes_replies_read_as_vllm_reads_them(reply, expected):
    assert parse_calls(reply, "hermes") == expected


@pytest.mark.parametrize(("reply", "expected"), LLAMA, ids=[str(i) for i in range(len(LLAMA))])
def test_llama3_json_replies_read_as_vllm_reads_them(reply, expected):
    assert parse_calls(reply, "llama3_json") == expected


PIECES = st.sampled_from(
    [
        "<tool_call>",
        "</tool_call>",
        "<|python_tag|>",
        "<think>",
        "</think>",
        "{",
        "}",
        "[",
        "]",
        '"name"',
        '"arguments"',
        '"parameters"',
        ":",
        ",",
        ";",
        '"',
        "\\",
        "f(",
        ")",
        "=",
        "1",
        " ",
        "\n",
    ]
)
REPLIES = st.one_of(
    st.text(max_size=80), st.lists(st.one_of(PIECES, st.text(max_size=4)), max_size=40).map("".join)
)


@settings(max_examples=400, deadline=None)
@given(REPLIES)
def test_a_reader_never_raises_on_any_text(reply):
    for call_format in CALL_FORMATS:
        calls = parse_calls(reply, call_format)
        assert calls is None or all(set(call) == {"name", "arguments"} for call in calls)
