"""The API-Bank task: level-1 ("Call") and level-2 ("Retrieve+Call") call accuracy, the protocol
ToolRL and Hammer report: an answer is correct iff its calls equal the gold ones by API name and
argument dict (order-free, compared as Tool-N1 does: ``"5"`` ≠ ``5``).

Three layouts load, each a format: the official test data (``apibank``:
``test-data/level-{1,2}-api.json``), Hammer's conversion (``hammer``:
``data/test/original/apibank_l{1,2}.json``) and ToolRL's (``toolrl_apibank``, also read as
``toolrl``: ``benchmarks/API-Bank/level-{1,2,3}-api_processed.json``). Records get ``category``
``apibank_l<level>`` and ids ``apibank_l<level>_<index>``. Earlier API calls in a dialogue become
an assistant turn with ``tool_calls`` followed by a ``tool`` turn with the result; the trailing
"Generate API Request:" cue of the original prompt is dropped (our prompt gives its own
instructions). In level-2 the APIs that ``ToolSearcher`` returned earlier in the dialogue are
added to ``tools`` (as Hammer does), so the gold call names an offered tool; a level-2 item whose
gold API was never retrieved in its dialogue (14 of the official 135, 6 of Hammer's 127, 6 of
ToolRL's 67) fails `record_errors` and is reported. API parameters become a JSON-schema object
(`toolexpander.data.formats.flat_params_schema`).

API-Bank has no pip package: clone it (github AlibabaResearch/DAMO-ConvAI, folder ``api-bank``)
and pass that folder as ``--data-dir``. The official ``test-data/level-{1,2}-api.json``,
Hammer's ``data/test/original/apibank_l{1,2}.json`` and ToolRL's
``benchmarks/API-Bank/level-{1,2,3}-api_processed.json`` layouts are all found under it
(or directly in it). The official API-Bank protocol instead executes the call on its
simulated APIs; exact match is what papers report.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from toolexpander.data import formats
from toolexpander.data.formats import (
    api_tool,
    calls_of,
    json_value,
    literal,
    parse_python_calls,
    toolrl_messages,
    toolrl_tools,
)
from toolexpander.data.schema import LoadResult, call_turn, make_record
from toolexpander.errors import UserError
from toolexpander.tasks.base import Task, Verdict, exact_match

NAME = "apibank"
LEVELS = ("l1", "l2", "l3")
DEFAULT_LEVELS = ("l1", "l2")
CLONE_HINT = (
    "API-Bank has no pip package: clone https://github.com/AlibabaResearch/DAMO-ConvAI and pass "
    "--data-dir DAMO-ConvAI/api-bank (Hammer's and ToolRL's conversions work too)"
)

# Where each layout keeps a level's file, relative to --data-dir; the first that exists wins.
_CANDIDATES = (
    "test-data/level-{n}-api.json",
    "level-{n}-api.json",
    "data/test/original/apibank_l{n}.json",
    "apibank_l{n}.json",
    "benchmarks/API-Bank/level-{n}-api_processed.json",
    "level-{n}-api_processed.json",
)


def category(level: str) -> str:
    """The record category of a level: ``l1`` -> ``apibank_l1``."""
    return f"apibank_{level}"


def find_level_file(data_dir: str | Path, level: str) -> Path:
    """The file of ``level`` (``l1``, ``l2``, ``l3``) under ``data_dir`` in any known layout."""
    if level not in LEVELS:
        raise UserError(f"unknown API-Bank level {level!r}; choose from {', '.join(LEVELS)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"API-Bank data folder {data_dir} does not exist. {CLONE_HINT}")
    for pattern in _CANDIDATES:
        path = data_dir / pattern.format(n=level[1:])
        if path.is_file():
            return path
    raise UserError(
        f"no API-Bank {level} file under {data_dir} (looked for {', '.join(_CANDIDATES)} with N={level[1:]})"
    )


def load_level(data_dir: str | Path, level: str) -> LoadResult:
    """The records of one level, from whichever layout `find_level_file` finds."""
    return load_file(find_level_file(data_dir, level))


def check(record: dict, calls: list[dict] | None) -> Verdict:
    """Tool-N1's exact match (`exact_match`), a wrong answer told apart by count, names or arguments."""
    verdict = exact_match(record, calls)
    if verdict["valid"] or calls is None:
        return verdict
    if len(calls) != len(record["answer"]):
        error_type = "wrong_count"
    elif sorted(str(c.get("name")) for c in calls) != sorted(c["name"] for c in record["answer"]):
        error_type = "wrong_name"
    else:
        error_type = "wrong_arguments"
    return {"valid": False, "error_type": error_type, "error": [f"expected {record['answer']}"]}


# ------------------------------------------------------------------------------------- loading


def _api_description_tool(description: Any) -> dict:
    """An API from API-Bank's own description format (``input_parameters``)."""
    if not isinstance(description, dict) or not isinstance(description.get("name"), str):
        raise TypeError("an API description must be an object with a string 'name'")
    return api_tool(
        description["name"], description.get("description", ""), description.get("input_parameters", {})
    )


_LOOSE_CALL = re.compile(r"\[(?P<name>\w+)\((?P<arguments>.*)\)\]", re.DOTALL)
_LOOSE_ARGUMENT = re.compile(r"(?P<key>\w+)=(?P<value>.*?)(?=, \w+=|$)", re.DOTALL)


def _parse_loose_request(text: str) -> list[dict]:
    """One call whose quoted values may hold unescaped quotes (48 gold answers of level-1 do,
    e.g. ``health_data='[{'name': ...}]'``): a value runs to the next ``, key=``. Quoted values
    stay strings, as Hammer and ToolRL read them; others must be literals."""
    match = _LOOSE_CALL.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a call list: {text.strip()[:60]!r}")
    pieces = list(_LOOSE_ARGUMENT.finditer(match["arguments"]))
    if ", ".join(piece[0] for piece in pieces) != match["arguments"]:
        raise ValueError(f"only keyword arguments are allowed: {text.strip()[:60]!r}")
    arguments = {}
    for argument in pieces:
        value = argument["value"]
        quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "'\""
        arguments[argument["key"]] = value[1:-1] if quoted else literal(value, f"argument {argument['key']!r}")
    return [{"name": match["name"], "arguments": arguments}]


def parse_api_request(text: str) -> list[dict]:
    """Calls written as ``[Name(key='v', ...), ...]`` (API-Bank's format).

    Read by `parse_python_calls` (`ast` with literal values only: nothing is ever evaluated);
    text that is not valid Python falls back to `_parse_loose_request`.

    >>> parse_api_request("[ToolSearcher(keywords='history October 6th')]")
    [{'name': 'ToolSearcher', 'arguments': {'keywords': 'history October 6th'}}]
    >>> parse_api_request("[Add(note='it's', n=2)]")
    [{'name': 'Add', 'arguments': {'note': "it's", 'n': 2}}]
    """
    try:
        return parse_python_calls(text)
    except ValueError:
        return _parse_loose_request(text)


def _split_request_result(text: str) -> tuple[list[dict], str]:
    """Split ``[Calls(...)]->result`` at the first ``->`` whose left side parses as calls."""
    for match in re.finditer(r"\]->", text):
        try:
            return parse_api_request(text[: match.start() + 1]), text[match.end() :]
        except ValueError:
            continue
    raise ValueError(f"cannot split API request and result in {text[:80]!r}")


def _retrieved_tools(result: str) -> list[dict]:
    """The API descriptions a ``ToolSearcher`` result holds (one dict or a list of them)."""
    try:
        found = literal(result.strip(), "ToolSearcher result")
    except ValueError:
        return []
    found = found if isinstance(found, list) else [found]
    return [
        _api_description_tool(d)
        for d in found
        if isinstance(d, dict) and isinstance(d.get("name"), str) and "input_parameters" in d
    ]


def _add_tools(tools: list[dict], new: list[dict]) -> None:
    names = {tool["name"] for tool in tools}
    for tool in new:
        if tool["name"] not in names:
            tools.append(tool)
            names.add(tool["name"])


_CUE = "Generate API Request:"


def _apibank_dialogue(text: str, tools: list[dict]) -> list[dict]:
    """Turns of an official API-Bank ``input`` (``User:``/``AI:``/``API-Request:`` lines)."""
    messages = []
    for line in text.splitlines():
        role, _, content = line.partition(": ")
        if role == "User":
            messages.append({"role": "user", "content": content.strip()})
        elif role == "AI":
            messages.append({"role": "assistant", "content": content.strip()})
        elif role == "API-Request":
            calls, result = _split_request_result(content)
            messages.append(call_turn(calls))
            messages.append({"role": "tool", "content": result})
            if any(call["name"] == "ToolSearcher" for call in calls):
                _add_tools(tools, _retrieved_tools(result))
        elif line.strip() and line.strip() != _CUE:
            raise ValueError(f"unexpected dialogue line {line[:60]!r}")
    return messages


_LEVEL = re.compile(r"(?:level-|_l)(?P<level>\d)")


def _level(path: Path) -> int:
    match = _LEVEL.search(path.name)
    if not match:
        raise UserError(
            f"cannot tell the API-Bank level from the file name {path.name} (expected level-N or _lN)"
        )
    return int(match["level"])


def _level_context(path: Path, first: Any) -> dict:
    return {"level": _level(path)}


def _apibank_record(level: int, index: int, messages: list, tools: list, answer: list) -> dict:
    return make_record(
        f"apibank_l{level}_{index}", messages, tools, answer, task=NAME, category=f"apibank_l{level}"
    )


def _official_record(item: dict, index: int, *, level: int) -> Iterator[dict]:
    _, marker, descriptions = item["instruction"].partition("API descriptions:")
    if not marker:
        raise ValueError("'instruction' has no 'API descriptions:'")
    lines = descriptions.strip().splitlines()
    tools = [_api_description_tool(json_value(line, "API description")) for line in lines]
    messages = _apibank_dialogue(item["input"], tools)
    expected = item["expected_output"].strip()
    if not expected.startswith("API-Request:"):
        raise ValueError(f"expected_output does not start with 'API-Request:': {expected[:60]!r}")
    answer = parse_api_request(expected.removeprefix("API-Request:"))
    yield _apibank_record(level, index, messages, tools, answer)


_FENCED = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _hammer_turn(message: dict) -> dict:
    role = {"agent": "assistant"}.get(message["role"], message["role"])
    content = message["content"].removesuffix(_CUE).rstrip()
    fenced = _FENCED.match(content) if role == "assistant" else None
    if fenced:
        return call_turn(calls_of(json_value(fenced[1], "call")))
    return {"role": role, "content": content}


def _hammer_record(item: dict, index: int, *, level: int) -> Iterator[dict]:
    tools = [api_tool(t["name"], t.get("description", ""), t.get("parameters", {})) for t in item["tools"]]
    messages = [_hammer_turn(message) for message in item["query"]]
    yield _apibank_record(level, index, messages, tools, calls_of(item["answers"]))


def _toolrl_record(item: dict, index: int, *, level: int) -> Iterator[dict]:
    answer = calls_of(item["answer"], "parameters")
    yield _apibank_record(level, index, toolrl_messages(item["user"]), toolrl_tools(item["system"]), answer)


def _is_hammer(row: dict) -> bool:
    # xLAM's rows have the same keys, with the query as one string.
    return formats.has_keys("query", "tools", "answers")(row) and isinstance(row["query"], list)


# The three layouts of API-Bank, told apart by the keys of their first item.
FORMATS = formats.registry(
    formats.Format(
        "apibank",
        _official_record,
        formats.has_keys("instruction", "input", "expected_output"),
        context=_level_context,
        shape={"instruction": str, "input": str, "expected_output": str},
    ),
    formats.Format(
        "hammer",
        _hammer_record,
        _is_hammer,
        context=_level_context,
        shape={"tools": [{"name": object}], "query": [{"role": str, "content": str}], "answers": list},
    ),
    formats.Format(
        "toolrl_apibank",
        _toolrl_record,
        formats.has_keys("system", "user", "answer"),
        context=_level_context,
        family="toolrl",
        shape={"system": str, "user": str, "answer": (dict, list)},
    ),
)


def load_file(path: str | Path, layout: str = "auto") -> LoadResult:
    """Load one API-Bank file in ``layout`` (one of `FORMATS`; ``auto``: told by its first item)."""
    return formats.load(str(path), layout, FORMATS)


TASK = Task(NAME, check)


