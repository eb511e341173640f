"""Read the calls of a reply in the format the model was prompted with (``prompt_format``).

A *call format* names how a reply writes its calls; the native ones carry the name of the vLLM
``--tool-call-parser`` that reads them from a served model:

- ``tooln1``: our own, one JSON list in the last ``<tool_call>`` block (`extract_tool_calls`,
  Tool-N1's decoding exactly);
- ``hermes`` (Qwen2.5, Qwen3): one ``<tool_call>{"name", "arguments"}</tool_call>`` block per call;
- ``llama3_json`` (Llama 3.1/3.2): bare ``{"name", "parameters"}`` objects, several joined by ``;``
  (as vLLM's parser reads them);
- ``pythonic`` (Llama 3.2 and 4 prompted for it; served with ``vllm serve MODEL
  --enable-auto-tool-choice --tool-call-parser pythonic``, ``llama4_pythonic`` for Llama 4): a
  Python list of calls with keyword arguments, ``[f(a=1), g(b='x')]`` (`read_pythonic`);
- ``native``: hermes or llama3_json, told apart by the reply itself (a predictions file with no
  model); pythonic replies are read only when named.

Which one a chat template writes is `toolexpander.prompts.template_call_format`'s to tell.

A native reply may open with a ``<think>…</think>`` block (the rewards require it); the calls are
read after it. Each native reply goes first through transformers' response parser with TRL's
response template of the family (what ``tokenizer.parse_response`` does for a served model; TRL
has none for pythonic), then, where that raises or misses a call, through our strict reader here, which also takes parallel
Llama calls. A reply with more than `TEMPLATE_MAX_MARKERS` region markers (``<tool_call>`` and
the like) is read by ours alone: the template parser's time grows with markers x length. Either way a malformed call makes the whole reply None (wrong), never "no call":
an irrelevance item must not be won by a broken call. Arguments keep their JSON types (``"5"``
stays a string): no tool schema is given to the parser, as it would cast ``"5"`` to ``5``.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from toolexpander.data.formats import MAX_LITERAL_CHARS
from toolexpander.data.schema import json_problem, too_deep
from toolexpander.rewards.parsing import (
    THINK_CLOSE,
    THINK_OPEN,
    cut_at_assistant,
    extract_tool_calls,
    tag_blocks,
)

NATIVE_CALL_FORMATS = ("hermes", "llama3_json", "pythonic")
CALL_FORMATS = ("tooln1", *NATIVE_CALL_FORMATS, "native")
_HERMES_OPEN, _HERMES_CLOSE = "<tool_call>", "</tool_call>"
_PYTHON_TAG = "<|python_tag|>"
_LLAMA_EOT = "<|eot_id|>"
_LLAMA_SEPARATOR = re.compile(r"\s*(;?)\s*")
_LLAMA4_OPEN, _LLAMA4_CLOSE, _LLAMA_EOM = "<|python_start|>", "<|python_end|>", "<|eom_id|>"
_PYTHONIC_OPEN = re.compile(r"\[\s*[A-Za-z_][\w.]*\s*\(")  # a list whose first item is a call


def answer_part(text: str) -> str:
    """What follows the think block (all of ``text`` when there is none), after the last
    ``<|im_start|>assistant``: where a native reply writes its calls."""
    text = cut_at_assistant(text)
    start = text.find(THINK_OPEN)
    end = text.find(THINK_CLOSE, start + len(THINK_OPEN)) if start >= 0 else -1
    return text[end + len(THINK_CLOSE) :] if end >= 0 else text


def _call(value: Any, arguments_key: str) -> dict | None:
    if isinstance(value, dict) and isinstance(value.get("name"), str) and arguments_key in value:
        return {"name": value["name"], "arguments": value[arguments_key]}
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def read_hermes(answer: str) -> list[dict] | None:
    """Our reader of Hermes calls: every ``<tool_call>`` block one JSON call object; no block is
    no call; an unclosed block or one that is not a call makes the reply None.

    >>> read_hermes('<tool_call>\\n{"name": "f", "arguments": {"a": "5"}}\\n</tool_call>')
    [{'name': 'f', 'arguments': {'a': '5'}}]
    >>> read_hermes('<tool_call>{"name": "f", "arguments": {}</tool_call>') is None
    True
    """
    blocks = tag_blocks(answer, _HERMES_OPEN, _HERMES_CLOSE)
    if answer.count(_HERMES_OPEN) != len(blocks):
        return None
    calls = [_call(_loads(block.strip()), "arguments") for block in blocks]
    return None if None in calls else calls


def read_llama3_json(answer: str) -> list[dict] | None:
    """Our reader of Llama 3.x calls: a reply that opens with ``{`` (after an optional
    ``<|python_tag|>``) is one or more ``{"name", "parameters"}`` objects joined by ``;``, else it
    is prose (no call). Objects with ``arguments`` are taken too; anything else is None.

    >>> read_llama3_json('{"name": "f", "parameters": {"a": 1}}; {"name": "g", "parameters": {}}')
    [{'name': 'f', 'arguments': {'a': 1}}, {'name': 'g', 'arguments': {}}]
    """
    text = answer.strip().removeprefix(_PYTHON_TAG).removesuffix(_LLAMA_EOT).strip()
    if not text.startswith("{"):
        return []
    decoder, calls, position = json.JSONDecoder(), [], 0
    while position < len(text):
        try:
            value, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):
            return None
        call = _call(value, "parameters") or _call(value, "arguments")
        if call is None:
            return None
        calls.append(call)
        # Matched in place: slicing off the rest at each call would make many calls quadratic.
        separator = _LLAMA_SEPARATOR.match(text, position)
        if not separator[1] and separator.end() < len(text):
            return None
        position = separator.end()
    return calls


def _literal(node: ast.expr) -> Any:
    """A keyword argument's value: a literal (`ast.literal_eval`) made of JSON values; ValueError
    otherwise (a name, a call, a tuple, a set, bytes...)."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError("not a literal") from None
    if too_deep(value) or json_problem(value):
        raise ValueError("not JSON")
    return value


def read_pythonic(answer: str) -> list[dict] | None:
    """Our reader of pythonic calls (vLLM's ``pythonic`` parser): a reply that opens with
    ``[name(`` or ``[dotted.name(`` (after an optional ``<|python_start|>`` or ``<|python_tag|>``)
    is a Python list of
    calls, parsed by `ast.parse` and never evaluated: each item a call of a plain name with
    keyword arguments only, each value read by `ast.literal_eval` and made of JSON values. Any
    other reply is prose (no call). A list that does not read so is None, and so is one longer
    than `toolexpander.data.formats.MAX_LITERAL_CHARS`; vLLM would drop a positional argument
    silently and read ``-1`` or a tuple as prose, where ours gives None, -1 and None.

    >>> read_pythonic("[get_weather(city='Paris', days=3), ping()]")
    [{'name': 'get_weather', 'arguments': {'city': 'Paris', 'days': 3}}, {'name': 'ping', 'arguments': {}}]
    >>> read_pythonic("[os.system('rm -rf /')]") is None
    True
    """
    text = answer.strip().removeprefix(_LLAMA4_OPEN).removeprefix(_PYTHON_TAG)
    for suffix in (_LLAMA_EOT, _LLAMA_EOM, _LLAMA4_CLOSE):
        text = text.strip().removesuffix(suffix)
    text = text.strip()
    if not _PYTHONIC_OPEN.match(text):
        return []
    if len(text) > MAX_LITERAL_CHARS:
        return None
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # the last two: hostile nesting
        return None
    if not isinstance(tree, ast.List):
        return None
    calls = []
    for node in tree.elts:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)) or node.args:
            return None
        names = [keyword.arg for keyword in node.keywords]
        if None in names or len(set(names)) < len(names):  # **kwargs, or a name given twice
            return None
        try:
            arguments = {keyword.arg: _literal(keyword.value) for keyword in node.keywords}
        except ValueError:
            return None
        calls.append({"name": node.func.id, "arguments": arguments})
    return calls


_OURS = {"hermes": read_hermes, "llama3_json": read_llama3_json, "pythonic": read_pythonic}
# TRL's response template for each family; Llama's closes a call with <|eot_id|>, which decoding drops.
_TRL_TEMPLATE = {"hermes": ("qwen3_template", ""), "llama3_json": ("llama3_template", _LLAMA_EOT)}
# What opens or closes a region in each family's template ('"parameters"' stands for Llama's
# open pattern). The parser rescans the rest of the reply at each one, so a reply of 32,000
# <tool_call> blocks took it 41 s; our reader, linear, reads a reply with more markers than
# TEMPLATE_MAX_MARKERS (no real reply has that many; on well-formed calls both readers agree).
_TEMPLATE_MARKERS = {"hermes": (_HERMES_OPEN, THINK_OPEN, "<|im_end|>"), "llama3_json": ('"parameters"', _LLAMA_EOT)}
TEMPLATE_MAX_MARKERS = 64


def _template_calls(answer: str, family: str) -> list[dict] | None:
    """The calls transformers' response parser reads with TRL's template, or None when it fails."""
    import trl.chat_template_utils as templates
    from transformers.utils.chat_parsing.response_parser import parse_response

    name, suffix = _TRL_TEMPLATE[family]
    try:
        message = parse_response(answer.strip() + suffix, getattr(templates, name), prefix="")
    except (ValueError, TypeError, KeyError):
        return None
    calls = [_call(call.get("function"), "arguments") for call in message.get("tool_calls") or ()]
    return None if None in calls else calls


def read_native(answer: str, family: str) -> list[dict] | None:
    """The calls of a native ``answer`` (see the module docstring): the template parser's when it
    reads as many calls as ours does, else ours (parallel Llama calls, malformed calls, replies
    with more than `TEMPLATE_MAX_MARKERS` markers)."""
    ours = _OURS[family](answer)
    if not ours or family not in _TRL_TEMPLATE:  # no call, malformed, or a family TRL has no template for
        return ours
    if sum(map(answer.count, _TEMPLATE_MARKERS[family])) > TEMPLATE_MAX_MARKERS:
        return ours
    parsed = _template_calls(answer, family)
    return parsed if parsed is not None and len(parsed) == len(ours) else ours


def detect_family(answer: str) -> str:
    """``hermes`` when the reply holds a ``<tool_call>`` tag, else ``llama3_json``."""
    return "hermes" if _HERMES_OPEN in answer else "llama3_json"


def parse_calls(text: str, call_format: str = "tooln1") -> list[dict] | None:
    """The calls ``[{"name", "arguments"}]`` of a reply in ``call_format`` (see the module
    docstring); ``[]`` for a reply that makes no call; None when the calls cannot be read.

    >>> parse_calls('<think>.</think>\\n<tool_call>\\n{"name": "f", "arguments": {}}\\n</tool_call>', "hermes")
    [{'name': 'f', 'arguments': {}}]
    >>> parse_calls("<think>.</think>No function fits.", "llama3_json")
    []
    """
    if call_format == "tooln1":
        return extract_tool_calls(text)
    if call_format not in CALL_FORMATS:
        raise ValueError(f"unknown call format {call_format!r}; choose one of {', '.join(CALL_FORMATS)}")
    answer = answer_part(text)
    return read_native(answer, detect_family(answer) if call_format == "native" else call_format)
