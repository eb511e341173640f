"""The one record type of toolexpander: a tool-calling task.

A record is a plain ``dict`` (one JSON object per JSONL line)::

    {
      "id": "glaive-17-0",                       # string, unique within a file
      "messages": [{"role": "user", "content": "..."}],   # the context turns
      "tools": [{"name": "f", "description": "...", "parameters": {"type": "object", ...}}],
      "answer": [{"name": "f", "arguments": {"x": 1}}]     # [] means no tool fits
    }

Roles are ``system``, ``user``, ``assistant`` and ``tool``. Evaluation items may carry
extra keys (BFCL's allowed-values lists under ``ground_truth``, a ``category``); they are
kept untouched. ``answer`` may be ``None`` for evaluation items whose benchmark scores by
other means (BFCL irrelevance: correct iff no call).

`record_errors` is the single validation used by ``toolexpander data validate``, by
training and by evaluation, so no record is ever dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
REQUIRED_FIELDS = ("id", "messages", "tools", "answer")


def make_record(id: str, messages: list[dict], tools: list[dict], answer: list[dict] | None, **extra: Any) -> dict:
    """Build a record with the fields in canonical order (extra keys last)."""
    return {"id": str(id), "messages": messages, "tools": tools, "answer": answer, **extra}


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
            errors.append(f"messages[{i}].role must be one of {'/'.join(ROLES)}, got {message.get('role')!r}")
        if not isinstance(message.get("content"), str):
            errors.append(f"messages[{i}].content must be a string")
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
            errors.append(f"duplicate tool name {name!r}")
        else:
            seen.add(name)
        if "description" in tool and not isinstance(tool["description"], str):
            errors.append(f"tools[{i}].description must be a string")
        if not isinstance(tool.get("parameters", {}), dict):
            errors.append(f"tools[{i}].parameters must be an object")
    return errors


def _answer_errors(answer: Any, tool_names: set[str] | None) -> list[str]:
    if answer is None:
        return []
    if not isinstance(answer, list):
        return [f"'answer' must be a list, got {type(answer).__name__}"]
    errors = []
    for i, call in enumerate(answer):
        if not isinstance(call, dict):
            errors.append(f"answer[{i}] must be an object")
            continue
        name = call.get("name")
        if not isinstance(name, str) or not name:
            errors.append(f"answer[{i}] has no name")
        elif tool_names is not None and name not in tool_names:
            errors.append(f"answer[{i}] calls {name!r}, which is not among the offered tools")
        if not isinstance(call.get("arguments"), dict):
            errors.append(f"answer[{i}].arguments must be an object")
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
    errors += _answer_errors(record["answer"], tool_names)
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

    def extend(self, other: LoadResult) -> None:
        self.records += other.records
        self.problems += other.problems
