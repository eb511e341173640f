"""The one record type of toolexpander: a tool-calling task.

A record is a plain ``dict`` (one JSON object per JSONL line)::

    {
      "id": "glaive-17-0",                       # string, unique within a file
      "messages": [{"role": "user", "content": "..."}],   # the context turns
      "tools": [{"name": "f", "description": "...", "parameters": {"type": "object", ...}}],
      "answer": [{"name": "f", "arguments": {"x": 1}}],    # [] means no tool fits
      "task": "generic"                          # how it is scored: `toolexpander.tasks.TASKS`
    }

Roles are ``system``, ``user``, ``assistant`` and ``tool``. An assistant context turn that
called tools holds the calls as data, as chat messages do: ``{"role": "assistant",
"content": "", "tool_calls": [{"name", "arguments"}]}``; only `toolexpander.prompts` writes
them as text, so a change of output format needs no re-loading. ``task`` names the benchmark
whose protocol scores the record (a record without one is ``generic``). Evaluation items may
carry extra keys (BFCL's allowed-values lists under ``ground_truth``, a ``category``); they are
kept untouched. ``answer`` may be ``None`` for evaluation items whose benchmark scores by
other means (BFCL live_relevance: correct iff some call).

`record_errors` is the single validation used by ``toolexpander data validate``, by
training and by evaluation, so no record is ever dropped silently.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
REQUIRED_FIELDS = ("id", "messages", "tools", "answer")
GENERIC_TASK = "generic"
# Far beyond real data (8 levels at most in ../shared/data) and far below Python's recursion
# limit, so no value that passed `too_deep` makes a recursive reader or writer fail.
MAX_DEPTH = 100
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def make_record(
    id: str, messages: list[dict], tools: list[dict], answer: list[dict] | None, *, task: str, **extra: Any
) -> dict:
    """Build a record with the fields in canonical order (extra keys last)."""
    return {"id": str(id), "messages": messages, "tools": tools, "answer": answer, "task": task, **extra}


def task_name(record: dict) -> str:
    """The task that scores ``record``: its ``task``, else ``generic``."""
    return record.get("task") or GENERIC_TASK


def call_turn(calls: list[dict]) -> dict:
    """An assistant context turn that made ``calls`` (rendered by `toolexpander.prompts`)."""
    return {"role": "assistant", "content": "", "tool_calls": calls}


# Same output as json.dumps(value, sort_keys=True), without building an encoder per call.
_canonical_json = json.JSONEncoder(sort_keys=True).encode


def call_multiset(calls: Any) -> dict[tuple, int] | None:
    """Tool-N1's comparison key: the multiset of ``(name, json.dumps(arguments, sort_keys=True))``,
    as ``{key: count}`` (a plain dict compares faster than a Counter, with the same result).

    So call order and key order do not matter, while ``"5"`` ≠ ``5`` and ``1`` ≠ ``1.0``.
    None when an item is not a mapping with both keys or a name is unhashable (where Tool-N1
    fails or raises; either way the answer is wrong).
    """
    counts: dict[tuple, int] = {}
    try:
        for call in calls:
            key = (call["name"], _canonical_json(call["arguments"]))
            counts[key] = counts.get(key, 0) + 1
    except (TypeError, KeyError, IndexError, ValueError, RecursionError):
        return None
    return counts


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects nest deeper than ``limit`` levels in ``value`` (a loop, not a
    recursion: it is the check that runs before anything recursive reads a value)."""
    # One level at a time, plain loops and a tuple for isinstance: the fastest of the ways we
    # timed (it runs on every row and record loaded).
    containers = (dict, list)
    level, depth = [value] if isinstance(value, containers) else [], 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below = []
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, containers):
                    below.append(child)
        level = below
    return False


_JSON_SCALARS = (str, int, float, bool, type(None))


def json_problem(value: Any) -> str | None:
    """Why ``value`` is not made of JSON values (str, int, float, bool, None, lists, objects with
    string keys), or None when it is; a loop, for values that passed `too_deep`.

    >>> json_problem({"a": [1, None]}) is None
    True
    >>> json_problem({"a": (1, 2)})
    'a value of type tuple is not JSON'
    """
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if not all(isinstance(key, str) for key in node):
                return "an object has a key that is not a string"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif not isinstance(node, _JSON_SCALARS):
            return f"a value of type {type(node).__name__} is not JSON"
    return None


def shown(value: Any) -> str:
    """A value as a reason quotes it: a string's repr cut to 40 characters, a list or an object
    by its type (so one hostile value cannot make a reason thousands of characters long)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:40]!r}…"
    return type(value).__name__ if isinstance(value, dict | list) else repr(value)


def call_errors(calls: Any, where: str, tool_names: set[str] | None) -> list[str]:
    """What is wrong with a call list ``[{"name", "arguments"}]`` (an answer or a turn's tool_calls,
    the gold answer of a line to score), each named from ``where``."""
    if not isinstance(calls, list):
        return [f"'{where}' must be a list, got {type(calls).__name__}"]
    errors = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict):
            errors.append(f"{where}[{i}] must be an object")
            continue
        name = call.get("name")
        if not isinstance(name, str) or not name:
            errors.append(f"{where}[{i}] has no name")
        elif tool_names is not None and name not in tool_names:
            errors.append(f"{where}[{i}] calls {shown(name)}, which is not among the offered tools")
        if not isinstance(call.get("arguments"), dict):
            errors.append(f"{where}[{i}].arguments must be an object")
    return errors


def _message_errors(messages: Any) -> list[str]:
    if not isinstance(messages, list):
        return [f"'messages' must be a list, got {type(messages).__name__}"]
    if not messages:
        return ["'messages' is empty"]
    errors = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            errors.append(f"messages[{i}] must be an object")
            continue
        if message.get("role") not in ROLES:
            errors.append(f"messages[{i}].role must be one of {'/'.join(ROLES)}, got {shown(message.get('role'))}")
        if not isinstance(message.get("content"), str):
            errors.append(f"messages[{i}].content must be a string")
        if "tool_calls" in message:
            if message.get("role") != "assistant":
                errors.append(f"messages[{i}] has tool_calls but is not an assistant turn")
            errors += call_errors(message["tool_calls"], f"messages[{i}].tool_calls", None)
    if not any(isinstance(m, dict) and m.get("role") == "user" for m in messages):
        errors.append("'messages' has no user turn")
    return errors


def _tool_errors(tools: Any) -> list[str]:
    if not isinstance(tools, list):
        return [f"'tools' must be a list, got {type(tools).__name__}"]
    errors, seen = [], set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            errors.append(f"tools[{i}] must be an object")
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            errors.append(f"tools[{i}] has no name")
        elif name in seen:
            errors.append(f"duplicate tool name {shown(name)}")
        else:
            seen.add(name)
        if "description" in tool and not isinstance(tool["description"], str):
            errors.append(f"tools[{i}].description must be a string")
        if not isinstance(tool.get("parameters", {}), dict):
            errors.append(f"tools[{i}].parameters must be an object")
    return errors


def record_errors(record: Any) -> list[str]:
    """Everything wrong with ``record``, as short human-readable strings ([] when valid).

    >>> record_errors({"id": "a", "messages": [{"role": "user", "content": "hi"}], "tools": [], "answer": []})
    []
    >>> record_errors({"id": "a", "messages": [], "tools": [], "answer": {}})
    ["'messages' is empty", "'answer' must be a list, got dict"]
    """
    if not isinstance(record, dict):
        return [f"a record must be a JSON object, got {type(record).__name__}"]
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        return [f"missing field {', '.join(repr(f) for f in missing)}"]
    errors = []
    if not isinstance(record["id"], str) or not record["id"]:
        errors.append("'id' must be a non-empty string")
    errors += _message_errors(record["messages"])
    tool_errors = _tool_errors(record["tools"])
    errors += tool_errors
    tool_names = None
    if isinstance(record["tools"], list) and not tool_errors:
        tool_names = {t["name"] for t in record["tools"]}
    if record["answer"] is not None:
        errors += call_errors(record["answer"], "answer", tool_names)
    if "task" in record and (not isinstance(record["task"], str) or not record["task"]):
        errors.append("'task' must be a non-empty string")
    return errors


def query_text(record: dict) -> str:
    """The last user turn: what a demonstration or a retrieval is matched on."""
    for message in reversed(record["messages"]):
        if message["role"] == "user":
            return message["content"]
    return ""


@dataclass(frozen=True)
class Problem:
    """Why one input record was rejected; prints as ``PATH:LINE: reason`` (LINE is 1-based:
    the line of a JSONL file or the index in a JSON array)."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class LoadResult:
    """Records that passed `record_errors`, and every input that did not, with its reason."""

    records: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


# (line, row, None) for a row that parsed, (line, None, reason) for one that did not; LINE is 1-based.
Row = tuple[int, Any, str | None]


def jsonl_rows(text: str) -> Iterator[Row]:
    """The JSON value of every non-blank line of JSON Lines ``text``: the one reader of JSONL
    (data files, predictions, completions to score).

    >>> list(jsonl_rows('{"a": 1}\\n\\n{oops'))
    [(1, {'a': 1}, None), (3, None, 'broken JSON: Expecting property name enclosed in double quotes')]
    """
    for line, content in enumerate(text.splitlines(), 1):
        if not content.strip():
            continue
        try:
            yield line, json.loads(content), None
        except (ValueError, RecursionError) as error:
            yield line, None, json_reason(error)


def json_reason(error: ValueError | RecursionError, what: str = "JSON") -> str:
    """Why ``json.loads`` failed on some ``what``, in words: its message for broken JSON; the
    other two ways it fails are nesting too deep for Python and an over-long integer.

    >>> json_reason(RecursionError("maximum recursion depth exceeded"))
    'nested deeper than 100 levels'
    """
    if isinstance(error, json.JSONDecodeError):
        return f"broken {what}: {error.msg}"
    if isinstance(error, RecursionError):  # Python's limit (about 1000 levels) is beyond ours
        return TOO_DEEP
    return f"broken {what}: a number longer than {sys.get_int_max_str_digits()} digits"
