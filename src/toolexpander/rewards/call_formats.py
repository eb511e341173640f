"""Read the calls of a reply in the format the model was prompted with (``prompt_format``).

A *call format* names how a reply writes its calls; the native ones carry the name of the vLLM
``--tool-call-parser`` that reads them from a served model:

- ``tooln1``: our own, one JSON list in the last ``<tool_call>`` block (`extract_tool_calls`,
  Tool-N1's decoding exactly);
- ``hermes`` (Qwen2.5, Qwen3): one ``<tool_call>{"name", "arguments"}</tool_call>`` block per call
  (`read_hermes`);
- ``llama3_json`` (Llama 3.1/3.2): ``{"name", "parameters"}`` objects, several joined by ``;``,
  often after ``<|python_tag|>`` (`read_llama3_json`);
- ``pythonic`` (Llama 3.2 and 4 prompted for it; served with ``vllm serve MODEL
  --enable-auto-tool-choice --tool-call-parser pythonic``, ``llama4_pythonic`` for Llama 4): a
  Python list of calls with keyword arguments, ``[f(a=1), g(b='x')]`` (`read_pythonic`);
- ``native``: hermes or llama3_json, told apart by the reply itself (a predictions file with no
  model); pythonic replies are read only when named.

Which one a chat template writes is `toolexpander.prompts.template_call_format`'s to tell.

A native reply may open with a ``<think>…</think>`` block (the rewards require it); the calls are
read after it, as vLLM reads them after its reasoning parser took the think text out. The hermes
and llama3_json readers read a reply as vLLM's parser of that name does (its non-streaming
``extract_tool_calls``): wherever vLLM returns calls, ours returns the same calls, with their
arguments as JSON values (``"5"`` stays a string; no tool schema casts them). Where vLLM returns
no call, ours returns ``[]`` for a reply that makes none and None for one whose calls are broken
(vLLM hands such a reply back as text): a broken call is a wrong answer, never "no call", so an
irrelevance item cannot be won by one. A reader never raises, whatever the text.
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
)

NATIVE_CALL_FORMATS = ("hermes", "llama3_json", "pythonic")
CALL_FORMATS = ("tooln1", *NATIVE_CALL_FORMATS, "native")
_HERMES_OPEN, _HERMES_CLOSE = "<tool_call>", "</tool_call>"
_PYTHON_TAG = "<|python_tag|>"
_LLAMA_EOT = "<|eot_id|>"
_LLAMA_CALL_SIGNS = (_PYTHON_TAG, '"name"')  # a reply holding one means to call
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
    """``value`` as a call, or None when it has no string name or no ``arguments_key``."""
    if isinstance(value, dict) and isinstance(value.get("name"), str) and arguments_key in value:
        return {"name": value["name"], "arguments": value[arguments_key]}
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def read_hermes(answer: str) -> list[dict] | None:
    """Our reader of Hermes calls, as vLLM's ``hermes`` parser reads them: each ``<tool_call>``
    opens a block that ends at the first ``</tool_call>`` after it, or at the end of the reply
    when none follows (a closing tag cut off with the stop token); each block must be one JSON
    object with a string ``name`` and ``arguments``. A ``<tool_call>`` inside a block (in a quoted
    argument, say) is part of it. No ``<tool_call>``: no call; a block that is not a call makes
    the reply None (vLLM: no call, all text).

    >>> read_hermes('<tool_call>\\n{"name": "f", "arguments": {"a": "5"}}\\n</tool_call>')
    [{'name': 'f', 'arguments': {'a': '5'}}]
    >>> read_hermes('<tool_call>{"name": "f", "arguments": {"t": "a <tool_call> b"}}')
    [{'name': 'f', 'arguments': {'t': 'a <tool_call> b'}}]
    >>> read_hermes('<tool_call>{"name": "f", "arguments": {}</tool_call>') is None
    True
    """
    calls, start = [], answer.find(_HERMES_OPEN)
    while start >= 0:
        start += len(_HERMES_OPEN)
        end = answer.find(_HERMES_CLOSE, start)
        call = _call(_loads(answer[start:] if end < 0 else answer[start:end]), "arguments")
        if call is None:
            return None
        calls.append(call)
        start = -1 if end < 0 else answer.find(_HERMES_OPEN, end + len(_HERMES_CLOSE))
    return calls


def read_llama3_json(answer: str) -> list[dict] | None:
    """Our reader of Llama 3.x calls, as vLLM's ``llama3_json`` parser reads them: every ``{``
    outside the objects already read starts a JSON object that must be a call, ``{"name",
    "arguments"}`` or ``{"name", "parameters"}`` (``arguments`` wins when both are there); the text
    around the objects (prose, ``<|python_tag|>``, ``;``) is skipped. A reply with no ``{`` makes
    no call. When an object cannot be read or is not a call, vLLM reads no call at all; ours
    gives None when the reply looks like a call (it opens with ``{``, or holds ``<|python_tag|>``
    or ``"name"``), else ``[]`` (prose with a brace in it).

    >>> read_llama3_json('{"name": "f", "parameters": {"a": 1}}; {"name": "g", "parameters": {}}')
    [{'name': 'f', 'arguments': {'a': 1}}, {'name': 'g', 'arguments': {}}]
    >>> read_llama3_json('Let me look. <|python_tag|>{"name": "f", "arguments": {}}')
    [{'name': 'f', 'arguments': {}}]
    >>> read_llama3_json("No function fits {sorry}.")
    []
    """
    decoder, calls, start = json.JSONDecoder(), [], answer.find("{")
    while start >= 0:
        try:
            value, end = decoder.raw_decode(answer, start)
        except (ValueError, RecursionError):
            value, end = None, start
        call = _call(value, "arguments") or _call(value, "parameters")
        if call is None:
            looks_like_a_call = answer.lstrip().startswith("{") or any(s in answer for s in _LLAMA_CALL_SIGNS)
            return None if looks_like_a_call else []
        calls.append(call)
        start = answer.find("{", end + 1)  # vLLM skips a brace right after an object, too
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


_READERS = {"hermes": read_hermes, "llama3_json": read_llama3_json, "pythonic": read_pythonic}


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
    return _READERS[detect_family(answer) if call_format == "native" else call_format](answer)
