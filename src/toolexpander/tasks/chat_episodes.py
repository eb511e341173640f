"""Multi-turn training data as episodes: chat logs whose assistant turns call tools and whose tool
turns give the results, read into one episode record per dialogue (the ``chat_episode`` task).

Formats:

``chat_episodes`` (OpenAI chat logs; APIGen-MT / xLAM-2 dialogues)
    ``{"messages" | "conversations": [...], "tools": [...], "system"?: str}``. A message is
    OpenAI's ``{"role", "content", "tool_calls"?}`` (a call ``{"function": {"name",
    "arguments"}}`` with the arguments as an object or JSON text, or a flat ``{"name",
    "arguments"}``) or ShareGPT's ``{"from", "value"}`` (human/user, gpt/assistant, system,
    ``function_call``: a call or a list of calls as JSON, ``observation``/tool: a result).
    ``tools`` is a list or JSON text of tools, plain or OpenAI's ``{"type": "function",
    "function": {...}}``. Told by ``messages`` + ``tools`` (a row that also has ``answer`` is
    ours); a ShareGPT ``conversations`` row is read as ``glaive`` items unless ``--format
    chat_episodes`` is given.
``glaive_chat`` (glaive-function-calling-v2 as published)
    ``{"system": "SYSTEM: ... -\\n{function JSON}\\n{function JSON}", "chat": "USER: ...
    ASSISTANT: <functioncall> {"name": ..., "arguments": '{...}'} <|endoftext|> FUNCTION RESPONSE:
    ... ASSISTANT: ..."}``; the arguments come as JSON inside single quotes, as glaive writes them.

A record (`episode_record`): ``turns``, the user-side messages of each turn (user and system, as
BFCL's multi-turn records have them); ``steps``, per turn, the assistant's call steps in order,
each ``{"calls": [{"name", "arguments"}], "results": [the tool results as given]}``; ``replies``,
per turn, the assistant's text (``""`` when it wrote none); ``messages``, the first turn's
messages; ``tools``; ``answer`` None; ``task`` ``chat_episode``. A user or system message after
the assistant has acted opens the next turn. A dialogue without any call yields no record (not a
problem), as the dialogue formats of `toolexpander.data.formats` do. A call to a tool that is
not offered, a tool result with no call before it, or an assistant turn before any user turn is a
problem naming the message.

The task's verdict, ours: an episode is valid iff it has the record's number of turns and each
turn's calls equal that turn's expected calls as a multiset (Tool-N1's comparison,
`toolexpander.data.schema.call_multiset`); the results are given, not executed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from toolexpander.data import formats
from toolexpander.data.schema import call_errors, call_multiset, make_record, shown
from toolexpander.tasks.base import CORRECT, Task, Verdict
from toolexpander.tasks.bfcl_multi_turn import is_turn_list

NAME = "chat_episode"
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "call",
    "observation": "tool",
    "tool": "tool",
}


def _call(value: Any, where: str) -> dict:
    """One source call as ``{"name", "arguments"}``: OpenAI's ``{"function": {...}}`` or flat,
    arguments as an object or JSON text."""
    if not isinstance(value, dict):
        raise TypeError(f"{where} must be an object, got {type(value).__name__}")
    function = value["function"] if isinstance(value.get("function"), dict) else value
    arguments = function.get("arguments", function.get("parameters", {}))
    return {
        "name": function.get("name"),
        "arguments": formats.json_value(arguments, f"{where}.arguments", dict),
    }


def _tools(value: Any) -> list:
    tools = formats.json_value(value, "tools", list) if value != "" else []
    return [
        tool["function"] if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
        for tool in tools
    ]


def episode_record(record_id: str, messages: list[dict], tools: list) -> dict | None:
    """The episode record of a dialogue (see the module docstring), or None when it makes no call.
    ``messages`` are ``{"role", "content", "tool_calls"?}`` with roles user, system, assistant and
    tool; ValueError, in words naming the message, when they do not form an episode."""
    turns: list[list[dict]] = []
    steps: list[list[dict]] = []
    replies: list[str] = []
    names = {tool.get("name") for tool in tools if isinstance(tool, dict)}
    for index, message in enumerate(messages):
        role, content, where = message["role"], message.get("content") or "", f"messages[{index}]"
        if role in ("user", "system"):
            if not turns or steps[-1] or replies[-1]:
                turns.append([])
                steps.append([])
                replies.append("")
            turns[-1].append({"role": role, "content": content})
        elif not any(m["role"] == "user" for m in (turns[0] if turns else [])):
            raise ValueError(f"{where}: {role} message before any user message")
        elif role == "assistant" and message.get("tool_calls"):
            calls = [_call(call, f"{where}.tool_calls[{i}]") for i, call in enumerate(message["tool_calls"])]
            errors = call_errors(calls, f"{where}.tool_calls", names)
            if errors:
                raise ValueError(errors[0])
            steps[-1].append({"calls": calls, "results": []})
        elif role == "assistant":
            replies[-1] = "\n\n".join(filter(None, [replies[-1], content]))
        elif role == "tool":
            if not steps[-1]:
                raise ValueError(f"{where}: a tool result with no call before it in its turn")
            steps[-1][-1]["results"].append(content)
        else:
            raise ValueError(f"{where}: unknown role {shown(role)}")
    if not any(steps):
        return None
    return make_record(record_id, turns[0], tools, None, task=NAME, turns=turns, steps=steps, replies=replies)


def _message(turn: Any, index: int) -> dict:
    """An OpenAI or ShareGPT message as ``{"role", "content", "tool_calls"?}``."""
    if not isinstance(turn, dict):
        raise TypeError(f"messages[{index}] must be an object, got {type(turn).__name__}")
    if "from" in turn:
        role = _SHAREGPT_ROLES.get(turn["from"])
        if role is None:
            raise ValueError(f"messages[{index}]: unknown turn role {shown(turn['from'])}")
        if role == "call":
            calls = formats.json_value(turn.get("value"), f"messages[{index}].value")
            return {
                "role": "assistant",
                "content": "",
                "tool_calls": calls if isinstance(calls, list) else [calls],
            }
        if not isinstance(turn.get("value"), str):
            raise ValueError(f"messages[{index}].value must be a string")
        return {"role": role, "content": turn["value"]}
    if not isinstance(turn.get("role"), str):
        raise TypeError(f"messages[{index}] has neither a 'role' nor a 'from'")
    if not isinstance(turn.get("content") or "", str):
        raise TypeError(f"messages[{index}].content must be a string")
    if not isinstance(turn.get("tool_calls") or [], list):
        raise TypeError(f"messages[{index}].tool_calls must be a list")
    return turn


def _convert_chat(row: dict, index: int) -> Iterator[dict]:
    turns = row["messages"] if "messages" in row else row.get("conversations")
    if not isinstance(turns, list):
        raise TypeError("a chat log needs 'messages' or 'conversations', a list of messages")
    system = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    messages = system + [_message(turn, i) for i, turn in enumerate(turns)]
    record = episode_record(f"chat_episodes-{row.get('id', index)}", messages, _tools(row["tools"]))
    if record is not None:
        yield record


_GLAIVE_LABEL = re.compile(r"^(USER|ASSISTANT|FUNCTION RESPONSE):", re.MULTILINE)
_GLAIVE_ROLES = {"USER": "user", "ASSISTANT": "assistant", "FUNCTION RESPONSE": "tool"}
_GLAIVE_CALL = "<functioncall>"
_GLAIVE_END = "<|endoftext|>"
# glaive writes the arguments as JSON text inside single quotes: {"name": "f", "arguments": '{"a": 1}'}
_GLAIVE_QUOTED_ARGUMENTS = re.compile(
    r'\{\s*"name"\s*:\s*(".*?")\s*,\s*"arguments"\s*:\s*\'(.*)\'\s*\}', re.DOTALL
)


def glaive_call(text: str) -> dict:
    """The call of a glaive ``<functioncall>`` (arguments quoted or plain JSON).

    >>> glaive_call('{"name": "get_news", "arguments": \\'{"country": "US"}\\'}')
    {'name': 'get_news', 'arguments': {'country': 'US'}}
    """
    match = _GLAIVE_QUOTED_ARGUMENTS.fullmatch(text.strip())
    if match is None:
        return _call(formats.json_value(text.strip(), "functioncall"), "functioncall")
    name = formats.json_value(match[1], "functioncall name", str)
    return {"name": name, "arguments": formats.json_value(match[2], f"arguments of {shown(name)}", dict)}


def glaive_messages(chat: str) -> list[dict]:
    """The messages of a glaive ``chat`` text (its ``USER:``, ``ASSISTANT:`` and ``FUNCTION
    RESPONSE:`` parts); the text of an assistant part before its ``<functioncall>`` is dropped."""
    parts = _GLAIVE_LABEL.split(chat)
    messages = []
    for label, text in zip(parts[1::2], parts[2::2], strict=True):
        text = text.strip().removesuffix(_GLAIVE_END).strip()
        call_at = text.find(_GLAIVE_CALL)
        if label == "ASSISTANT" and call_at >= 0:
            call = glaive_call(text[call_at + len(_GLAIVE_CALL) :])
            messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        else:
            messages.append({"role": _GLAIVE_ROLES[label], "content": text})
    return messages


def glaive_tools(system: str) -> list:
    """The function JSON objects written one after another in a glaive system text ([] for none)."""
    start = system.find("{")
    return [] if start < 0 else formats.json_values(system[start:], "function")


def _convert_glaive_chat(row: dict, index: int) -> Iterator[dict]:
    tools = glaive_tools(row["system"])
    record = episode_record(f"glaive_chat-{row.get('id', index)}", glaive_messages(row["chat"]), tools)
    if record is not None:
        yield record


FORMATS = formats.registry(
    formats.Format(
        "chat_episodes",
        _convert_chat,
        formats.has_keys("messages", "tools"),
        shape={"tools": (str, list), "system?": str},
    ),
    formats.Format(
        "glaive_chat",
        _convert_glaive_chat,
        formats.has_keys("system", "chat"),
        shape={"system": str, "chat": str},
    ),
)


def check_episode(record: dict, turns: Any) -> Verdict:
    """Ours (see the module docstring), with ``turns_valid``: each turn's verdict."""
    expected = [[call for step in steps for call in step["calls"]] for steps in record["steps"]]
    if not is_turn_list(turns) or len(turns) != len(expected):
        verdict = {
            "valid": False,
            "error_type": "multi_turn:turns",
            "error": [f"expected {len(expected)} turns of calls"],
        }
        return {**verdict, "turns_valid": [False] * len(expected)}
    valid = [
        call_multiset(made) is not None and call_multiset(made) == call_multiset(want)
        for made, want in zip(turns, expected)
    ]
    if all(valid):
        return {**CORRECT, "turns_valid": valid}
    first = valid.index(False)
    error = f"turn {first}: expected {json.dumps(expected[first])[:200]}"
    return {"valid": False, "error_type": "mismatch", "error": [error], "turns_valid": valid}


TASK = Task(NAME, check_episode, multi_turn=True)
