"""Read a model's answer: ``<think>…</think>`` then ``<tool_call>[…]</tool_call>`` (SPEC §2).

Every function takes any ``str`` and never raises. Model output is only ever read with
`json.loads`, never evaluated. The decoding follows Tool-N1's ``compute_score_v0`` step by step
(the reward in `toolexpander.rewards.rewards` must agree with it exactly), so a few of its
quirks are kept on purpose and marked where they happen.
"""

from __future__ import annotations

import json
import re
from typing import Any

ASSISTANT_MARKER = "<|im_start|>assistant"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# The labels of a self-made example, as the self-exemplifying prompt asks: "Query: …\nCall: […]".
_QUERY_LABEL = re.compile(r"\s*query:", re.IGNORECASE)
_CALL_LABEL = re.compile(r"\n[ \t]*call:", re.IGNORECASE)


def tag_blocks(text: str, open_tag: str, close_tag: str) -> list[str]:
    """The contents of ``open_tag…close_tag`` blocks, as ``re.findall`` with the lazy DOTALL
    pattern ``open(.*?)close`` finds them (Tool-N1's pattern for ``<tool_call>``): each block
    ends at the first closing tag after its opening, and the next is searched after that.

    Unlike the regular expression, this stops at the first opening tag left unclosed, so a
    degenerate output of many opening tags costs linear, not quadratic, time.

    >>> tag_blocks("<b>1</b> <b>2<b>3</b> <b>4", "<b>", "</b>")
    ['1', '2<b>3']
    """
    blocks, position = [], 0
    while (start := text.find(open_tag, position)) >= 0:
        start += len(open_tag)
        end = text.find(close_tag, start)
        if end < 0:
            break
        blocks.append(text[start:end])
        position = end + len(close_tag)
    return blocks


def cut_at_assistant(text: str) -> str:
    """The text after the last ``<|im_start|>assistant``, or all of it when the marker is absent.

    Tool-N1 scores decoded prompt+response strings, so only the last assistant turn counts.
    (Tool-N1 keeps the marker itself; it holds no tag, so dropping it changes no check.)

    >>> cut_at_assistant("<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n<think>")
    '\\n<think>'
    """
    index = text.rfind(ASSISTANT_MARKER)
    return text if index < 0 else text[index + len(ASSISTANT_MARKER) :]


def has_think_tags(text: str) -> bool:
    """Tool-N1's think check: both tags present somewhere (their order is not checked)."""
    return THINK_OPEN in text and THINK_CLOSE in text


def extract_think(text: str) -> str | None:
    """The content of the think block: from the first ``<think>`` to the next ``</think>``.

    >>> extract_think("<think> plan </think><tool_call>[]</tool_call>")
    ' plan '
    >>> extract_think("</think> wrong order <think>") is None
    True
    """
    text = cut_at_assistant(text)
    start = text.find(THINK_OPEN)
    if start < 0:
        return None
    start += len(THINK_OPEN)
    end = text.find(THINK_CLOSE, start)
    return None if end < 0 else text[start:end]


def decode_json(text: str) -> Any:
    """``json.loads``, applied once more when the result is a string (double-encoded JSON);
    None when either step fails, as for a JSON ``null``."""
    try:
        value = json.loads(text)
        if isinstance(value, str):
            value = json.loads(value)
    except (ValueError, RecursionError):  # JSONDecodeError, over-long integers, deep nesting
        return None
    return value


def call_list(value: Any) -> list[dict] | None:
    """``value`` as a call list ``[{"name", "arguments", ...}, ...]`` (items as given), or None
    when it is not one.

    A single call object counts as a one-item list; extra keys of an item are allowed.
    ``arguments`` may be any JSON value: Tool-N1 compares it as JSON text whatever it is.
    Tool-N1 iterates over a decoded string as over a list, so the empty string ``""`` (from
    the double-encoded ``"\\"\\""``) passes as no calls there, and here too.
    """
    if isinstance(value, dict):
        return [value] if "name" in value and "arguments" in value else None
    if value == "":
        return []
    if isinstance(value, list) and all(
        isinstance(c, dict) and "name" in c and "arguments" in c for c in value
    ):
        return value
    return None


def _name_and_arguments(calls: list[dict]) -> list[dict]:
    return [{"name": call["name"], "arguments": call["arguments"]} for call in calls]


def last_tool_call_block(text: str) -> str | None:
    """The stripped content of the last ``<tool_call>…</tool_call>`` block (see `tag_blocks`),
    or None when there is none. ``text`` is taken as it is (not cut)."""
    blocks = tag_blocks(text, "<tool_call>", "</tool_call>")
    return blocks[-1].strip() if blocks else None


def extract_tool_calls(text: str) -> list[dict] | None:
    """The calls ``[{"name", "arguments"}]`` of the last ``<tool_call>`` block after the last
    assistant marker, or None when there is no block, its stripped content is not JSON, or
    the JSON is not a call list (see `call_list`; extra keys are dropped here).

    >>> extract_tool_calls('<tool_call>[{"name": "f", "arguments": {"x": 1}}]</tool_call>')
    [{'name': 'f', 'arguments': {'x': 1}}]
    >>> extract_tool_calls('<tool_call>{"name": "f", "arguments": {}, "id": 7}</tool_call>')
    [{'name': 'f', 'arguments': {}}]
    >>> extract_tool_calls("<tool_call>[{'name': 'f'}]</tool_call>") is None
    True
    """
    block = last_tool_call_block(cut_at_assistant(text))
    calls = None if block is None else call_list(decode_json(block))
    return None if calls is None else _name_and_arguments(calls)


def extract_examples(text: str) -> list[dict]:
    """The well-formed self-made examples in the think block, as ``{"query", "calls"}``.

    An example is ``<example>Query: …\\nCall: […]</example>`` with a non-empty query and a
    non-empty call list (the JSON a ``<tool_call>`` block would hold); others are skipped.

    >>> extract_examples('<think><example>Query: Rain in Oslo?\\nCall: [{"name": "w", '
    ...                  '"arguments": {"city": "Oslo"}}]</example></think>')
    [{'query': 'Rain in Oslo?', 'calls': [{'name': 'w', 'arguments': {'city': 'Oslo'}}]}]
    """
    think = extract_think(text)
    if think is None:
        return []
    examples = []
    for body in tag_blocks(think, "<example>", "</example>"):
        # Found by plain searches, not one pattern with a lazy group: that backtracks
        # quadratically or worse on long runs of whitespace.
        query_label = _QUERY_LABEL.match(body)
        call_label = query_label and _CALL_LABEL.search(body, query_label.end())
        if not call_label:
            continue
        query = body[query_label.end() : call_label.start()].strip()
        calls = call_list(decode_json(body[call_label.end() :].strip()))
        if query and calls:
            examples.append({"query": query, "calls": _name_and_arguments(calls)})
    return examples
